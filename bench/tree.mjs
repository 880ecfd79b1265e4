// The benchmark's input: a deterministic, seeded tree of one large binary-like file (bin/x, compressing
// like real ELF binaries, ~0.35 with gzip -6) and many small text-like files in nested directories.
// The same seed and sizes give the same bytes on every machine and Node version (AES-CTR + integer PRNG).
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Bump when the generator's output changes, so cached trees are regenerated. */
const GENERATOR_VERSION = 2;

/** Tree sizes: the full benchmark and the CI smoke test. */
export const TREE_SIZES = {
  full: { bigBytes: 512 * 1024 * 1024, smallFiles: 20_000, smallBytes: 512 * 1024 * 1024 },
  quick: { bigBytes: 15 * 1024 * 1024, smallFiles: 500, smallBytes: 15 * 1024 * 1024 },
};

/** A small, fast, seedable PRNG (mulberry32): uniform 32-bit integers and floats in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return { next, float: () => next() / 4294967296, int: (n) => next() % n };
}

function seedOf(...parts) {
  return createHash("sha256").update(parts.join("/")).digest().readUInt32LE(0);
}

/** A stream of seeded pseudo-random bytes (AES-128-CTR over zeros). */
function randomStream(label) {
  const key = createHash("sha256").update(`ocify-bench/${label}`).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

const BLOCK = 64 * 1024;
// Tuned so bin/x gzips to ~0.35 at level 6 at about the speed real binaries do (measured: 0.350 with zlib and
// Debian's gzip -6; /usr/bin's largest files gave 0.40). Kinds of 64 KiB block: code < W_CODE <= packed data
// < W_RAND <= string tables < W_STR <= padding/tables.
const IMMEDIATE_PERCENT = 8;
const REPEAT_PERCENT = 38;
const W_CODE = 0.75;
const W_RAND = 0.83;
const W_STR = 0.93;

/**
 * Binary-like bytes: 64 KiB blocks of machine-code-like token streams (a seeded dictionary of short byte
 * strings, skewed choice, random immediates), incompressible runs (packed data), identifier tables (small
 * alphabet, NUL-separated) and structured runs (zero padding, tables of offsets), weighted so gzip -6 gets
 * about 0.35 with the many short matches real code gives deflate.
 */
export function writeBigFile(path, size, seed) {
  const rnd = prng(seedOf(seed, "big"));
  const bytes = randomStream(`${seed}/big`);
  // The dictionary, flat: token t is dict[offsets[t] .. offsets[t] + lengths[t]).
  const TOKENS = 4096;
  const lengths = new Uint8Array(TOKENS);
  const offsets = new Uint32Array(TOKENS);
  let dictSize = 0;
  for (let t = 0; t < TOKENS; t++) {
    lengths[t] = 2 + rnd.int(6);
    offsets[t] = dictSize;
    dictSize += lengths[t];
  }
  const dict = bytes(dictSize);
  const words = [];
  for (let i = 0; i < 3000; i++) {
    const length = 3 + rnd.int(14);
    let word = "";
    for (let j = 0; j < length; j++) word += "abcdefghijklmnopqrstuvwxyz_"[rnd.int(27)];
    words.push(Buffer.from(word));
  }
  const fd = openSync(path, "w");
  try {
    const block = Buffer.alloc(BLOCK);
    for (let written = 0; written < size; written += BLOCK) {
      const kind = rnd.float();
      let n = 0;
      if (kind < W_CODE) {
        // Code: dictionary tokens, now and then a 4-byte immediate, and often a recent run again
        // (recurring instruction sequences: what gives deflate its matches in real code).
        while (n < BLOCK - 64) {
          const r = rnd.next();
          const p = r % 100;
          if (p < REPEAT_PERCENT && n > 64) {
            const length = 6 + ((r >>> 8) % 34);
            const distance = 8 + ((r >>> 16) % Math.min(n - 8, 8192));
            for (let i = 0; i < length; i++, n++) block[n] = block[n - distance];
          } else if (p < REPEAT_PERCENT + IMMEDIATE_PERCENT) {
            const imm = rnd.next();
            block[n++] = imm;
            block[n++] = imm >>> 8;
            block[n++] = imm >>> 16;
            block[n++] = imm >>> 24;
          } else {
            const u = (r >>> 7) / 33554432;
            const t = Math.floor(u * u * u * TOKENS);
            const start = offsets[t];
            const end = start + lengths[t];
            for (let i = start; i < end; i++) block[n++] = dict[i];
          }
        }
        block.fill(0xcc, n);
        n = BLOCK;
      } else if (kind < W_RAND) {
        bytes(BLOCK).copy(block);
        n = BLOCK;
      } else if (kind < W_STR) {
        // String tables.
        while (n < BLOCK) {
          n += words[Math.floor(rnd.float() ** 2 * words.length)].copy(block, n);
          if (n < BLOCK) block[n++] = 0;
        }
      } else {
        // Padding and offset tables.
        block.fill(0);
        if (rnd.int(2) === 0) {
          let value = rnd.next();
          const step = 1 + rnd.int(64);
          for (let i = 0; i + 8 <= BLOCK; i += 8) {
            block.writeUInt32LE(value >>> 0, i);
            value += step;
          }
        }
        n = BLOCK;
      }
      const length = Math.min(BLOCK, size - written);
      writeSync(fd, block, 0, length);
    }
  } finally {
    closeSync(fd);
  }
}

let corpus;
/** A shared 4 MiB text corpus (lines of words from a seeded vocabulary); small files are slices of it, edited. */
function textCorpus(seed) {
  if (corpus?.seed === seed) return corpus.lines;
  const rnd = prng(seedOf(seed, "corpus"));
  const vocabulary = [];
  for (let i = 0; i < 5000; i++) {
    const length = 2 + rnd.int(10);
    let word = "";
    for (let j = 0; j < length; j++) word += "etaoinshrdlucmfwypvbgkqjxz"[Math.floor(rnd.float() ** 1.7 * 26)];
    vocabulary.push(word);
  }
  const lines = [];
  let total = 0;
  while (total < 4 * 1024 * 1024) {
    const indent = " ".repeat(2 * rnd.int(4));
    const count = 3 + rnd.int(12);
    const parts = [];
    for (let i = 0; i < count; i++) parts.push(vocabulary[Math.floor(rnd.float() ** 2 * vocabulary.length)]);
    const line = `${indent}${parts.join(rnd.int(4) === 0 ? ", " : " ")}${rnd.int(3) === 0 ? ";" : ""}\n`;
    lines.push(line);
    total += line.length;
  }
  corpus = { seed, lines };
  return lines;
}

/** The relative path of small file `i` of `count`: three levels of directories. */
export function smallFilePath(i) {
  const a = Math.floor(i / 1000);
  const b = Math.floor(i / 50) % 20;
  return join("lib", `pkg${String(a).padStart(2, "0")}`, `mod${String(b).padStart(2, "0")}`, `file${String(i).padStart(5, "0")}.txt`);
}

/** The content of small file `i`: deterministic, sizes log-spread around the mean. */
export function smallFileContent(seed, i, meanBytes) {
  const rnd = prng(seedOf(seed, "small", i));
  const lines = textCorpus(seed);
  // Sizes from ~mean/8 to ~3*mean, log-uniform-ish; mean roughly preserved.
  const target = Math.max(64, Math.round(meanBytes * 0.2 * Math.exp(rnd.float() * 2.9)));
  const parts = [`# file ${i}\n`];
  let size = parts[0].length;
  let at = rnd.int(lines.length);
  while (size < target) {
    // Runs of consecutive corpus lines, sometimes jumping, sometimes with a number in them.
    if (rnd.int(8) === 0) at = rnd.int(lines.length);
    let line = lines[at++ % lines.length];
    if (rnd.int(6) === 0) line = `${rnd.next()} ${line}`;
    parts.push(line);
    size += line.length;
  }
  return parts.join("");
}

function marker(seed, sizes) {
  return JSON.stringify({ version: GENERATOR_VERSION, seed, ...sizes });
}

/** The small files the benchmark edits; regenerated on every start, so an interrupted run leaves no trace. */
export const EDITED_FILE_INDEX = 4321;

/**
 * Make sure `dir` holds the tree for (seed, sizes): reuse it when its marker matches, else generate it.
 * Returns { dir, generated, bigBytes, smallFiles, totalBytes, editedFile }.
 */
export function ensureTree(dir, seed, sizes, log = () => {}) {
  const markerPath = `${dir}.json`;
  const wanted = marker(seed, sizes);
  const meanSmall = sizes.smallBytes / sizes.smallFiles;
  const editIndex = EDITED_FILE_INDEX % sizes.smallFiles;
  let generated = false;
  if (!existsSync(markerPath) || readFileSync(markerPath, "utf8") !== wanted) {
    generated = true;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "bin"), { recursive: true });
    log(`generating the tree in ${dir} (${Math.round((sizes.bigBytes + sizes.smallBytes) / 1048576)} MiB, seed ${seed})`);
    writeBigFile(join(dir, "bin", "x"), sizes.bigBytes, seed);
    const made = new Set();
    for (let i = 0; i < sizes.smallFiles; i++) {
      const path = join(dir, smallFilePath(i));
      const parent = join(path, "..");
      if (!made.has(parent)) {
        mkdirSync(parent, { recursive: true });
        made.add(parent);
      }
      writeFileSync(path, smallFileContent(seed, i, meanSmall));
    }
    writeFileSync(markerPath, wanted);
  }
  // An interrupted run may have left its edit: put the original content back.
  const editedFile = join(dir, smallFilePath(editIndex));
  writeFileSync(editedFile, smallFileContent(seed, editIndex, meanSmall));
  return { dir, generated, editedFile, restore: () => writeFileSync(editedFile, smallFileContent(seed, editIndex, meanSmall)) };
}

/** A small directory of config-like files for the "changed file in a small layer of its own" scenario. */
export function writeSmallDir(dir, seed) {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 12; i++) writeFileSync(join(dir, `conf${i}.ini`), smallFileContent(seed + 1, i, 2048));
  return join(dir, "conf0.ini");
}

/**
 * A directory holding one big binary-like file of `gib` GiB (the big-layer scenario), kept between runs
 * like the tree. Returns its path.
 */
export function ensureBigLayerDir(dir, seed, gib, log = () => {}) {
  const markerPath = `${dir}.json`;
  const wanted = JSON.stringify({ version: GENERATOR_VERSION, seed, gib });
  if (!existsSync(markerPath) || readFileSync(markerPath, "utf8") !== wanted) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    log(`generating ${gib} GiB in ${dir} (seed ${seed})`);
    writeBigFile(join(dir, "data.bin"), gib * 1024 * 1024 * 1024, `${seed}-big-layer`);
    writeFileSync(markerPath, wanted);
  }
  return dir;
}

/**
 * The remote scenario's image: ten layers of different sizes, each a small tree of its own (a binary-like
 * file and text files), as an application image's layers are (runtime, libraries, the app, its config).
 * Sizes in bytes of tar content per layer: [binary, small files count, small files bytes].
 */
export const LAYER_SIZES = {
  full: [
    [40 << 20, 2000, 24 << 20],
    [24 << 20, 1000, 8 << 20],
    [0, 3000, 24 << 20],
    [8 << 20, 500, 8 << 20],
    [8 << 20, 200, 2 << 20],
    [0, 600, 6 << 20],
    [4 << 20, 100, 1 << 20],
    [0, 300, 3 << 20],
    [1 << 20, 50, 512 << 10],
    [0, 60, 256 << 10],
  ],
  quick: [
    [2 << 20, 100, 1 << 20],
    [1 << 20, 60, 512 << 10],
    [0, 100, 1 << 20],
    [512 << 10, 40, 256 << 10],
    [256 << 10, 30, 128 << 10],
    [0, 40, 256 << 10],
    [128 << 10, 20, 64 << 10],
    [0, 30, 128 << 10],
    [64 << 10, 10, 32 << 10],
    [0, 12, 24 << 10],
  ],
};

/** The layer whose file the remote scenario's rebuild edits: a small one, as an app's own code layer is. */
export const EDITED_LAYER = 7;

/** Make sure `dir` holds the ten layer trees (`dir/l0` … `dir/l9`); returns ensureTree's answer for each. */
export function ensureLayerTrees(dir, seed, sizes, log = () => {}) {
  return sizes.map(([bigBytes, smallFiles, smallBytes], i) =>
    ensureTree(join(dir, `l${i}`), seed * 100 + i, { bigBytes, smallFiles, smallBytes }, log),
  );
}

/** The big-tree scenario's sizes: a node_modules or an SDK sysroot (300,000 files), and the CI smoke test's. */
export const BIG_TREE_SIZES = {
  full: { bigBytes: 0, smallFiles: 300_000, smallBytes: 300_000 * 1536 },
  quick: { bigBytes: 0, smallFiles: 5_000, smallBytes: 5_000 * 1024 },
};
