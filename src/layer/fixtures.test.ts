/**
 * Seeded fixture trees for the layer tests (generated, never committed), and readers of what the builder
 * wrote. Holds no tests itself: the test files import it.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import tarStream from "tar-stream";

/** A small deterministic PRNG (mulberry32). */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const words = ["layer", "image", "manifest", "digest", "blob", "tar", "gzip", "zstd", "config", "index", "registry", "ocify"];

/** Compressible, seeded bytes (words and numbers, some random bytes). */
export function content(next: () => number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    if (next() < 0.1) {
      out[at++] = Math.floor(next() * 256);
      continue;
    }
    const word = `${words[Math.floor(next() * words.length)]}${Math.floor(next() * 1000)} `;
    at += out.write(word, at, Math.min(word.length, size - at), "latin1");
  }
  return out;
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix = "ocify-layer-test-"): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Names the fixture tree contains, for assertions. */
export const fixture = {
  longName: `${"long-component-".repeat(8)}end.txt`,
  deepDir: "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21/d22/d23/d24/d25/d26",
  unicode: "ünïcödé-日本語.txt",
  big: "big.bin",
  bigSize: 9 * 1024 * 1024 + 7,
};

/**
 * Write a seeded tree: nested directories, many small files, a file spanning several blocks, long and
 * non-ASCII names, a symlink, a hardlink pair, setuid/sticky/private modes, an empty file and a fifo.
 */
export function makeTree(root: string, seed: number, files = 120, bigSize = fixture.bigSize): void {
  const next = random(seed);
  mkdirSync(root, { recursive: true });
  for (let i = 0; i < files; i++) {
    const dir = join(root, `dir${i % 7}`, `sub${i % 3}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `file${i}.txt`), content(next, Math.floor(next() * 40000)));
  }
  writeFileSync(join(root, fixture.big), content(next, bigSize));
  writeFileSync(join(root, fixture.longName), content(next, 300));
  mkdirSync(join(root, fixture.deepDir), { recursive: true });
  writeFileSync(join(root, fixture.deepDir, "leaf"), "leaf\n");
  writeFileSync(join(root, fixture.unicode), "unicode\n");
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "setuid"), "#!/bin/sh\n");
  chmodSync(join(root, "setuid"), 0o4755);
  writeFileSync(join(root, "private"), "secret\n");
  chmodSync(join(root, "private"), 0o600);
  mkdirSync(join(root, "tmp"));
  chmodSync(join(root, "tmp"), 0o1777);
  symlinkSync("dir0/sub0/file0.txt", join(root, "link"));
  writeFileSync(join(root, "z-hard"), "hardlinked\n");
  linkSync(join(root, "z-hard"), join(root, "a-hard"));
  execFileSync("mkfifo", [join(root, "fifo")]);
}

/** One entry read back from a tar. */
export interface ReadEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  uname: string;
  gname: string;
  sha256?: string;
}

/** Read a tar with tar-stream (an independent reader). */
export async function readTar(tar: Buffer): Promise<ReadEntry[]> {
  const extract = tarStream.extract();
  const entries: ReadEntry[] = [];
  const done = (async () => {
    for await (const entry of extract as unknown as AsyncIterable<Readable & { header: tarStream.Header }>) {
      const h = entry.header;
      const hash = createHash("sha256");
      for await (const chunk of entry as AsyncIterable<Buffer>) hash.update(chunk);
      entries.push({
        name: h.name,
        type: h.type,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        size: h.size,
        mtime: h.mtime.getTime() / 1000,
        linkname: h.linkname || null,
        devmajor: h.devmajor,
        devminor: h.devminor,
        uname: h.uname ?? "",
        gname: h.gname ?? "",
        ...(h.type === "file" ? { sha256: hash.digest("hex") } : {}),
      });
    }
  })();
  extract.end(tar);
  await done;
  return entries;
}

/** Concatenate a stream (test-sized data only). */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The sha256 of bytes as a digest string. */
export function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Decompress a whole gzip stream (every member). */
export function gunzip(bytes: Buffer): Buffer {
  return gunzipSync(bytes);
}
