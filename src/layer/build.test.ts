import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { InputError, UsageError } from "../errors.js";
import { MediaType } from "../media-types.js";
import { defaultPolicy } from "./blocks.js";
import { buildLayer, isRacy, type LayerBuildOptions, layerState, parseLayerFlag } from "./build.js";
import { collect, content, fixture, gunzip, makeTree, random, sha256, tempDir } from "./fixtures.test.js";
import { encodeRecord, type LayerRecord } from "./prepare.js";

const work = tempDir();
after(() => work.remove());
let counter = 0;

function fresh(name: string, seed: number, files?: number): string {
  const dir = join(work.path, `${name}-${counter++}`);
  makeTree(dir, seed, files);
  return dir;
}

function options(cache: string, extra: Partial<LayerBuildOptions> = {}): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip, ...extra };
}

function blockFiles(cache: string): string[] {
  const root = join(work.path, cache, "blocks");
  return readdirSync(root).flatMap((dir) => readdirSync(join(root, dir)).map((f) => join(root, dir, f)));
}

describe("layer test fixtures", () => {
  it("generate the same tree for the same seed and another for another seed", () => {
    const a = tempDir();
    const b = tempDir();
    const c = tempDir();
    try {
      makeTree(a.path, 7, 10);
      makeTree(b.path, 7, 10);
      makeTree(c.path, 8, 10);
      const read = (root: string) => readFileSync(join(root, "dir3", "sub0", "file3.txt"));
      assert.deepEqual(read(a.path), read(b.path));
      assert.notDeepEqual(read(a.path), read(c.path));
    } finally {
      a.remove();
      b.remove();
      c.remove();
    }
  });
});

describe("layer blobs", () => {
  it("gzip: the blob gunzips (GNU gzip and Node) to exactly the tar; digests and sizes are right", async () => {
    const tree = fresh("gzip", 11);
    const layer = await buildLayer({ source: tree, dest: "/app" }, options("gzip"));
    const blob = await collect(layer.open());
    assert.equal(layer.descriptor.mediaType, MediaType.ociLayerGzip);
    assert.equal(layer.descriptor.size, blob.length);
    assert.equal(layer.descriptor.digest, sha256(blob));
    const tar = execFileSync("gzip", ["-dc"], { input: blob, maxBuffer: 1 << 30 });
    assert.equal(sha256(tar), layer.diffID);
    assert.equal(tar.length, layer.tarSize);
    assert.equal(sha256(gunzip(blob)), layer.diffID);
    assert.ok(layer.blocks > 3, "the 9 MiB file alone spans three blocks");
    assert.equal(layer.createdBy, "ocify layer directory -> /app", "what the layer is, not where it came from");
  });

  it("zstd: the blob decompresses with zstd -d to the same tar", async () => {
    const tree = fresh("zstd", 12);
    const gz = await buildLayer({ source: tree, dest: "/" }, options("zstd"));
    const layer = await buildLayer(
      { source: tree, dest: "/" },
      options("zstd", { compression: "zstd", mediaType: MediaType.ociLayerZstd }),
    );
    const blob = await collect(layer.open());
    assert.equal(layer.descriptor.digest, sha256(blob));
    const tar = execFileSync("zstd", ["-dc"], { input: blob, maxBuffer: 1 << 30 });
    assert.equal(sha256(tar), layer.diffID);
    assert.equal(layer.diffID, gz.diffID, "the compression does not change the tar");
    assert.notEqual(layer.descriptor.digest, gz.descriptor.digest);
  });

  it("none: the blob is the tar, digest equals diffID", async () => {
    const tree = fresh("none", 13, 20);
    const layer = await buildLayer({ source: tree, dest: "/" }, options("none", { compression: "none", mediaType: MediaType.ociLayer }));
    const blob = await collect(layer.open());
    assert.equal(layer.descriptor.digest, layer.diffID);
    assert.equal(sha256(blob), layer.diffID);
  });

  it("feeds tee with exactly the blob while building, with backpressure from a slow reader", async () => {
    const tree = fresh("tee", 14);
    let seen: Buffer | undefined;
    const layer = await buildLayer(
      { source: tree, dest: "/" },
      options("tee", {
        tee: async (stream: Readable) => {
          const chunks: Buffer[] = [];
          for await (const chunk of stream) {
            chunks.push(chunk as Buffer);
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
          seen = Buffer.concat(chunks);
        },
      }),
    );
    assert.ok(seen);
    assert.equal(sha256(seen), layer.descriptor.digest);
    assert.equal(seen.length, layer.descriptor.size);
  });

  it("does not feed tee when a layer read again has exactly the recorded build's blocks", async () => {
    const tree = fresh("tee-same", 15, 40);
    // A file modified "in the future" is racy for every record: the layer is read again each time.
    const future = new Date(Date.now() + 3600_000);
    utimesSync(join(tree, "dir1", "sub1", "file1.txt"), future, future);
    const fed: string[] = [];
    const tee = async (stream: Readable): Promise<void> => {
      fed.push(sha256(await collect(stream)));
    };
    const first = await buildLayer({ source: tree, dest: "/" }, options("tee-same", { tee }));
    assert.deepEqual(fed, [first.descriptor.digest], "a first build streams its blob");
    const again = await buildLayer({ source: tree, dest: "/" }, options("tee-same", { tee }));
    assert.equal(again.unchanged, false, "read again (racy)");
    assert.equal(again.descriptor.digest, first.descriptor.digest);
    assert.equal(fed.length, 1, "the same blocks: nothing streamed");
    appendFileSync(join(tree, "dir2", "sub2", "file2.txt"), "changed\n");
    const changed = await buildLayer({ source: tree, dest: "/" }, options("tee-same", { tee }));
    assert.deepEqual(fed, [first.descriptor.digest, changed.descriptor.digest], "a change streams the new blob");
  });

  it("fails the build when tee fails", async () => {
    const tree = fresh("tee-fail", 15, 10);
    await assert.rejects(
      buildLayer(
        { source: tree, dest: "/" },
        options("tee-fail", {
          tee: async (stream) => {
            stream.resume();
            throw new Error("upload refused");
          },
        }),
      ),
      /upload refused/,
    );
  });

  it("reports progress of kind build, ending at the tar size", async () => {
    const tree = fresh("progress", 16, 10);
    const events: { phase: string; kind: string; bytes: number; total?: number }[] = [];
    const layer = await buildLayer({ source: tree, dest: "/" }, options("progress", { progress: (e) => events.push(e) }));
    assert.equal(events[0]?.phase, "start");
    assert.equal(events.at(-1)?.phase, "done");
    assert.equal(events.at(-1)?.bytes, layer.tarSize);
    assert.ok(events.every((e) => e.kind === "build" && e.total === layer.tarSize));
    const bytes = events.filter((e) => e.phase === "progress").map((e) => e.bytes);
    assert.deepEqual(
      bytes,
      [...bytes].sort((a, b) => a - b),
    );
  });
});

describe("rebuilds", () => {
  it("a rebuild after one file changed recompresses only its block and gives a cold build's digest", async () => {
    const tree = fresh("rebuild", 21, 400);
    const first = await buildLayer({ source: tree, dest: "/app" }, options("rebuild"));
    appendFileSync(join(tree, "dir3", "sub1", "file10.txt"), "one more line\n");
    const rebuilt = await buildLayer({ source: tree, dest: "/app" }, options("rebuild"));
    const cold = await buildLayer({ source: tree, dest: "/app" }, options("rebuild-cold"));
    assert.notEqual(rebuilt.descriptor.digest, first.descriptor.digest);
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.equal(rebuilt.diffID, cold.diffID);
    assert.equal(rebuilt.descriptor.size, cold.descriptor.size);
    assert.equal(cold.reusedBlocks, 0);
    assert.ok(rebuilt.blocks > 4);
    assert.ok(rebuilt.reusedBlocks >= rebuilt.blocks - 2, `${rebuilt.reusedBlocks} of ${rebuilt.blocks} blocks reused`);
    assert.equal(sha256(await collect(rebuilt.open())), cold.descriptor.digest);
  });

  it("takes the previous build's unchanged blocks on trust, except blocks holding a racy file", async () => {
    const tree = fresh("trust", 22, 300);
    execFileSync("find", [tree, "-type", "f", "-exec", "touch", "-d", "@1600000000", "{}", "+"]);
    // big.bin is modified "now" as far as any record can tell: its blocks must be compared every time.
    const future = new Date(Date.now() + 3600_000);
    utimesSync(join(tree, fixture.big), future, future);
    await buildLayer({ source: tree, dest: "/" }, options("trust"));
    appendFileSync(join(tree, "dir2", "sub2", "file5.txt"), "one more line\n");
    const rebuilt = await buildLayer({ source: tree, dest: "/" }, options("trust"));
    const cold = await buildLayer({ source: tree, dest: "/" }, options("trust-cold"));
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.equal(rebuilt.diffID, cold.diffID);
    assert.equal(rebuilt.reusedBlocks, rebuilt.blocks - 1, "only the edited file's block is compressed");
    const bigBlocks = Math.ceil(fixture.bigSize / defaultPolicy.chunkSize);
    assert.equal(rebuilt.reusedBlocks - rebuilt.trustedBlocks, bigBlocks, "the racy file's blocks are compared, the rest trusted");
    assert.equal(cold.trustedBlocks, 0, "nothing is trusted without a previous build");
  });

  it("hashes a rebuild's trusted blocks of small files from their cached members, and never from a damaged one", async () => {
    // 6,000 files of 100-1,100 bytes, older than any build (so trusted): blocks of ~1,000 files each.
    const tree = join(work.path, `small-files-${counter++}`);
    const next = random(41);
    for (let i = 0; i < 6000; i++) {
      mkdirSync(join(tree, `d${i % 40}`), { recursive: true });
      writeFileSync(join(tree, `d${i % 40}`, `f${i}.txt`), Buffer.alloc(100 + Math.floor(next() * 1000), String(i % 10)));
    }
    execFileSync("find", [tree, "-exec", "touch", "-h", "-d", "@1600000000", "{}", "+"]);
    const source = { source: tree, dest: "/app" };
    const worker = { producer: "worker" as const };
    await buildLayer(source, options("small-files", worker));
    appendFileSync(join(tree, "d7", "f7.txt"), "one more line\n");
    const rebuilt = await buildLayer(source, options("small-files", worker));
    const cold = await buildLayer(source, options("small-files-cold"));
    assert.deepEqual([rebuilt.diffID, rebuilt.descriptor.digest], [cold.diffID, cold.descriptor.digest]);
    assert.ok(rebuilt.blocks >= 4 && rebuilt.trustedBlocks >= rebuilt.blocks - 2, `${rebuilt.trustedBlocks} of ${rebuilt.blocks} trusted`);
    assert.equal(rebuilt.unpackedBlocks, rebuilt.trustedBlocks, "every trusted block's bytes came from its member");
    // A member damaged on disk is not the block: its bytes come from the files (or from the member made again).
    const member = blockFiles("small-files").find((file) => statSync(file).size > 4096) as string;
    const bytes = readFileSync(member);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
    writeFileSync(member, bytes);
    appendFileSync(join(tree, "d9", "f9.txt"), "another line\n");
    const damaged = await buildLayer(source, options("small-files", worker));
    const coldAgain = await buildLayer(source, options("small-files-cold"));
    assert.deepEqual([damaged.diffID, damaged.descriptor.digest], [coldAgain.diffID, coldAgain.descriptor.digest]);
    assert.ok(damaged.unpackedBlocks > 0);
  });

  it("the worker-thread and main-thread producers make the same blobs, cold and rebuilt", async () => {
    const digests: Record<string, string[]> = {};
    for (const producer of ["worker", "inline"] as const) {
      const tree = fresh(`modes-${producer}`, 30, 150);
      const cold = await buildLayer({ source: tree, dest: "/" }, options(`modes-${producer}`, { producer }));
      appendFileSync(join(tree, "dir2", "sub2", "file2.txt"), "edited\n");
      const rebuilt = await buildLayer({ source: tree, dest: "/" }, options(`modes-${producer}`, { producer }));
      assert.ok(rebuilt.reusedBlocks > 0);
      const again = await buildLayer({ source: tree, dest: "/" }, options(`modes-${producer}-cold`, { producer }));
      assert.equal(again.descriptor.digest, rebuilt.descriptor.digest);
      digests[producer] = [cold.descriptor.digest, cold.diffID, rebuilt.descriptor.digest];
    }
    assert.deepEqual(digests.worker, digests.inline);
  });

  it("compresses a one-file rebuild's block on the calling thread; a bigger change boots a compressing thread", {
    skip: process.platform !== "linux" && "counts threads in /proc (Linux)",
  }, async () => {
    const tree = fresh("one-block", 24, 200);
    // Files older than the first build: its blocks are then taken on trust (no file racy against it).
    execFileSync("find", [tree, "-type", "f", "-exec", "touch", "-d", "@1600000000", "{}", "+"]);
    await buildLayer({ source: tree, dest: "/" }, options("one-block"));
    // The rebuilds run in a process of their own: this one keeps the threads earlier builds parked.
    const script = `
      import { appendFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
      import { readFile } from "node:fs/promises";
      const { buildLayer } = await import(${JSON.stringify(new URL("./build.js", import.meta.url).href)});
      const options = ${JSON.stringify(options("one-block"))};
      const threads = () => readdirSync("/proc/self/task").length;
      const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
      await readFile(${JSON.stringify(join(tree, fixture.big))}); // libuv's pool threads start now
      const before = threads();
      appendFileSync(${JSON.stringify(join(tree, "dir1", "sub1", "file3.txt"))}, "edited\\n");
      const small = await buildLayer({ source: ${JSON.stringify(tree)}, dest: "/" }, options);
      await settle();
      const one = threads();
      const big = readFileSync(${JSON.stringify(join(tree, fixture.big))});
      big[1] ^= 0xff;
      writeFileSync(${JSON.stringify(join(tree, fixture.big))}, big);
      const large = await buildLayer({ source: ${JSON.stringify(tree)}, dest: "/" }, options);
      await settle();
      console.log(JSON.stringify({ before, one, many: threads(), compressed: [small, large].map((l) => l.blocks - l.reusedBlocks), digest: large.descriptor.digest }));`;
    const dir = tempDir("ocify-one-block-");
    try {
      writeFileSync(join(dir.path, "rebuild.mjs"), script);
      const out = execFileSync(process.execPath, [join(dir.path, "rebuild.mjs")], { encoding: "utf8", timeout: 60_000 });
      const result = JSON.parse(out) as { before: number; one: number; many: number; compressed: number[]; digest: string };
      assert.deepEqual(result.compressed, [1, Math.ceil(fixture.bigSize / defaultPolicy.chunkSize)]);
      assert.equal(result.one, result.before, "one changed block is compressed on the calling thread");
      assert.ok(result.many > result.before, "more than a block's worth to compress boots a thread");
      const cold = await buildLayer({ source: tree, dest: "/" }, options("one-block-cold"));
      assert.equal(result.digest, cold.descriptor.digest);
    } finally {
      dir.remove();
    }
  });

  it("a change inside a large file recompresses only the blocks of that file", async () => {
    const tree = fresh("rebuild-big", 22, 30);
    const first = await buildLayer({ source: tree, dest: "/" }, options("rebuild-big"));
    const big = join(tree, fixture.big);
    const bytes = readFileSync(big);
    bytes[5 * 1024 * 1024] = (bytes[5 * 1024 * 1024] as number) ^ 0xff;
    writeFileSync(big, bytes);
    const rebuilt = await buildLayer({ source: tree, dest: "/" }, options("rebuild-big"));
    const cold = await buildLayer({ source: tree, dest: "/" }, options("rebuild-big-cold"));
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.notEqual(rebuilt.descriptor.digest, first.descriptor.digest);
    // The file's blocks are keyed by its change detector, so all of them are made again, nothing else.
    assert.equal(rebuilt.blocks - rebuilt.reusedBlocks, 3);
  });

  it("reuses a layer whose files did not change without reading them", async () => {
    const tree = fresh("unchanged", 23, 50);
    // Old mtimes: not racy.
    execFileSync("find", [tree, "-type", "f", "-exec", "touch", "-d", "@1600000000", "{}", "+"]);
    const first = await buildLayer({ source: tree, dest: "/" }, options("unchanged"));
    assert.equal(first.unchanged, false);
    const again = await buildLayer({ source: tree, dest: "/" }, options("unchanged"));
    assert.equal(again.unchanged, true);
    assert.equal(again.descriptor.digest, first.descriptor.digest);
    assert.equal(again.diffID, first.diffID);
    assert.equal(sha256(await collect(again.open())), first.descriptor.digest);
    // Another destination is another layer.
    const elsewhere = await buildLayer({ source: tree, dest: "/srv" }, options("unchanged"));
    assert.equal(elsewhere.unchanged, false);
    assert.notEqual(elsewhere.diffID, first.diffID);
  });

  it("detects a corrupted cached block, rebuilds it and still gives the cold digest", async () => {
    const tree = fresh("corrupt", 24, 200);
    await buildLayer({ source: tree, dest: "/" }, options("corrupt"));
    const files = blockFiles("corrupt");
    for (const file of files) {
      const bytes = readFileSync(file);
      bytes[bytes.length - 9] = (bytes[bytes.length - 9] as number) ^ 0x55; // inside the deflate data, before the trailer
      writeFileSync(file, bytes);
    }
    appendFileSync(join(tree, "dir0", "sub0", "file0.txt"), "x");
    const rebuilt = await buildLayer({ source: tree, dest: "/" }, options("corrupt"));
    const cold = await buildLayer({ source: tree, dest: "/" }, options("corrupt-cold"));
    assert.equal(rebuilt.reusedBlocks, 0, "no damaged block is used");
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.equal(sha256(await collect(rebuilt.open())), cold.descriptor.digest);
  });

  it("detects cached blocks that are whole but belong to other content (swapped files)", async () => {
    const tree = fresh("swap", 29, 200);
    const first = await buildLayer({ source: tree, dest: "/" }, options("swap"));
    const files = blockFiles("swap");
    assert.ok(files.length >= 4);
    const a = readFileSync(files[1] as string);
    const b = readFileSync(files[2] as string);
    writeFileSync(files[1] as string, b);
    writeFileSync(files[2] as string, a);
    appendFileSync(join(tree, "empty"), "now with content\n");
    const rebuilt = await buildLayer({ source: tree, dest: "/" }, options("swap"));
    const cold = await buildLayer({ source: tree, dest: "/" }, options("swap-cold"));
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.notEqual(rebuilt.descriptor.digest, first.descriptor.digest);
    assert.ok(rebuilt.reusedBlocks <= rebuilt.blocks - 2, "the two swapped blocks were compressed again");
  });

  it("a block damaged under an unchanged layer fails open() with a digest error, and the next build heals it", async () => {
    const tree = fresh("heal", 25, 40);
    execFileSync("find", [tree, "-type", "f", "-exec", "touch", "-d", "@1600000000", "{}", "+"]);
    const first = await buildLayer({ source: tree, dest: "/" }, options("heal"));
    const victim = blockFiles("heal")[0] as string;
    const bytes = readFileSync(victim);
    bytes[40] = (bytes[40] as number) ^ 1;
    writeFileSync(victim, bytes);
    const reused = await buildLayer({ source: tree, dest: "/" }, options("heal"));
    assert.equal(reused.unchanged, true);
    await assert.rejects(collect(reused.open()), (error: Error & { code?: string }) => error.code === "CACHE_DAMAGED");
    const healed = await buildLayer({ source: tree, dest: "/" }, options("heal"));
    assert.equal(healed.unchanged, false);
    assert.equal(healed.descriptor.digest, first.descriptor.digest);
    assert.equal(sha256(await collect(healed.open())), first.descriptor.digest);
  });

  it("racy-clean guard: a file changed within the same timestamp tick is read again", async () => {
    for (const racy of [true, false]) {
      const tree = fresh(`racy-${racy}`, 26, 10);
      const file = join(tree, "dir1", "sub1", "file1.txt");
      execFileSync("find", [tree, "-type", "f", "-exec", "touch", "-d", "@1600000000", "{}", "+"]);
      const when = racy ? new Date(Date.now() + 60_000) : new Date(Date.now() - 3600_000);
      utimesSync(file, when, when);
      const cache = `racy-${racy}`;
      const first = await buildLayer({ source: tree, dest: "/" }, options(cache));
      // Same size, same mtime: only ctime tells, and within one clock tick it would not. Simulate that
      // tick by making the record's fingerprint match the tree as it is now.
      const before = readFileSync(file);
      const next = random(99);
      writeFileSync(file, content(next, before.length));
      utimesSync(file, when, when);
      const state = await layerState({ source: tree, dest: "/" }, options(cache));
      const { check: _old, ...record } = JSON.parse(readFileSync(state.recordPath, "utf8")) as LayerRecord & { check: string };
      record.fingerprint = state.fingerprint;
      writeFileSync(state.recordPath, encodeRecord(record));
      const rebuilt = await buildLayer({ source: tree, dest: "/" }, options(cache));
      const cold = await buildLayer({ source: tree, dest: "/" }, options(`${cache}-cold`));
      if (racy) {
        assert.equal(rebuilt.unchanged, false, "a racy file is read again");
        assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
      } else {
        // Control: without the guard's condition the stale record is (by design) trusted.
        assert.equal(rebuilt.unchanged, true);
        assert.equal(rebuilt.descriptor.digest, first.descriptor.digest);
      }
    }
  });

  it("isRacy uses a wide margin for whole-second timestamps", () => {
    const start = 1_700_000_000_000_000_000n;
    assert.equal(isRacy(start - 50_000_000n + 1n, start), true);
    assert.equal(isRacy(start - 200_000_001n, start), false);
    assert.equal(isRacy(start - 1_000_000_000n, start), true, "a whole second");
    assert.equal(isRacy(start - 3_000_000_000n, start), false);
  });
});

describe("aborting", () => {
  it("stops a build when its signal aborts, writing no layer record", async () => {
    const tree = fresh("abort", 40, 300);
    const controller = new AbortController();
    let events = 0;
    const build = buildLayer(
      { source: tree, dest: "/" },
      options("abort", {
        signal: controller.signal,
        progress: (event) => {
          if (event.phase === "progress" && ++events === 2) controller.abort();
        },
      }),
    );
    await assert.rejects(build, (error: Error) => error.name === "AbortError");
    assert.deepEqual(readdirSync(join(work.path, "abort")).includes("layers") ? readdirSync(join(work.path, "abort", "layers")) : [], []);
    const after = await buildLayer({ source: tree, dest: "/" }, options("abort"));
    const cold = await buildLayer({ source: tree, dest: "/" }, options("abort-cold"));
    assert.equal(after.descriptor.digest, cold.descriptor.digest);
  });
});

describe("layer sources", () => {
  it("parses --layer SRC[:DEST]", () => {
    assert.deepEqual(parseLayerFlag("./out"), { source: "./out", dest: "/" });
    assert.deepEqual(parseLayerFlag("./out:/app"), { source: "./out", dest: "/app" });
    assert.deepEqual(parseLayerFlag("a:b:/x/"), { source: "a:b", dest: "/x/" });
    assert.throws(() => parseLayerFlag("./out:app"), UsageError);
    assert.throws(() => parseLayerFlag(":/app"), UsageError);
  });

  it("names a missing source in a one-line InputError", async () => {
    await assert.rejects(buildLayer({ source: "./does-not-exist", dest: "/" }, options("missing")), (error: Error) => {
      assert.ok(error instanceof InputError);
      assert.equal(error.message, "layer source ./does-not-exist does not exist");
      assert.ok(error.hint);
      return true;
    });
  });

  it("refuses a symlink that climbs out of the root, as Docker does", async () => {
    const tree = fresh("escape", 27, 2);
    const { symlinkSync } = await import("node:fs");
    symlinkSync("../../../etc/passwd", join(tree, "dir0", "evil"));
    await assert.rejects(buildLayer({ source: tree, dest: "/" }, options("escape")), (error: Error) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /symlink \/dir0\/evil -> \.\.\/\.\.\/\.\.\/etc\/passwd points outside/);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  });
});
