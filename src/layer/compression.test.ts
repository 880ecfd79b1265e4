import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { crc32, gunzipSync } from "node:zlib";
import { codecIdOf, createCodec } from "./compression.js";
import { loadDeflater } from "./libdeflate.js";

/** How long a child process may take before it counts as hung: far beyond its time on a loaded machine. */
const hangLimitMs = 120_000;

/** Block-like data: compressible text with some noise, of `size` bytes. */
function blockOf(size: number, seed: number): Buffer {
  const block = Buffer.alloc(size);
  let state = seed >>> 0 || 1;
  for (let at = 0; at < size; ) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const line = `line ${state % 977} of block ${seed}: ${"abcdefghij".repeat(state % 7)}\n`;
    at += block.write(line, at, "latin1");
  }
  // Some incompressible bytes too (still seeded).
  for (let at = size >> 1, end = at + Math.min(4096, size >> 3); at < end; at++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    block[at] = state >>> 24;
  }
  return block;
}

/** A buffer that is the only view of its own ArrayBuffer, as a layer's block source hands out. */
function owned(data: Buffer): Buffer {
  const memory = new ArrayBuffer(data.length);
  const view = Buffer.from(memory);
  data.copy(view);
  return view;
}

describe("gzip codec (libdeflate on worker threads, small blocks inline)", () => {
  it("makes one canonical gzip member per block that zlib decodes, with the block's CRC-32", async () => {
    const codec = await createCodec("gzip");
    try {
      assert.match(codec.id, /^gzip\/1\/libdeflate-\d+\.\d+\.\d+$/);
      assert.equal(codecIdOf("gzip"), codec.id, "the planner knows the id without the codec");
      for (const size of [0, 1, 4095, 1 << 20, (4 << 20) + 1000]) {
        const data = blockOf(size, size + 1);
        const { chunks, crc, input } = await codec.compress(data);
        assert.equal(input, undefined, "nothing moved: the caller did not say it owns the block");
        const member = Buffer.concat(chunks);
        assert.deepEqual([member[0], member[1], member[8], member[9]], [0x1f, 0x8b, 0, 0xff], "magic, XFL 0, OS unknown");
        assert.equal(member.readUInt32LE(4), 0, "no mtime");
        assert.ok(gunzipSync(member).equals(data), `round trip of ${size} bytes`);
        assert.equal(crc >>> 0, crc32(data) >>> 0);
        assert.ok(data.equals(blockOf(size, size + 1)), "the caller's bytes are untouched");
      }
    } finally {
      await codec.close();
    }
  });

  it("gives the same bytes whatever the thread, order or concurrency, and as the package's own gzip()", async () => {
    const blocks = Array.from({ length: 9 }, (_, i) => blockOf((1 << 20) + i * 7919, i + 100));
    const first = await createCodec("gzip");
    const second = await createCodec("gzip");
    try {
      const sequential: Buffer[] = [];
      for (const block of blocks) sequential.push(Buffer.concat((await first.compress(block)).chunks));
      const parallel = await Promise.all([...blocks].reverse().map((block) => second.compress(owned(block))));
      parallel.reverse();
      for (const [i, result] of parallel.entries()) assert.ok(Buffer.concat(result.chunks).equals(sequential[i] as Buffer), `block ${i}`);
      const { gzip } = (await import("libdeflate" as string)) as { gzip(data: Uint8Array, level: number): Uint8Array };
      const reference = Buffer.from(gzip(blocks[3] as Buffer, 1));
      reference[8] = 0;
      reference[9] = 0xff;
      assert.ok(reference.equals(sequential[3] as Buffer), "the module used directly compresses as the package does");
      // A small block is compressed on this thread, by the same module: the same bytes too.
      const small = blockOf(40_000, 5);
      const here = Buffer.concat((await first.compress(small)).chunks);
      const theirs = Buffer.from(gzip(small, 1));
      theirs[8] = 0;
      theirs[9] = 0xff;
      assert.ok(theirs.equals(here), "inline, as the package does");
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("wraps the module's raw deflate into the member its own gzip wrapper makes, at every level", async () => {
    const { gzip } = (await import("libdeflate" as string)) as { gzip(data: Uint8Array, level: number): Uint8Array };
    for (let level = 1; level <= 9; level++) {
      const deflater = await loadDeflater(level);
      for (const [size, seed] of [
        [0, 1],
        [1, 2],
        [70_000, 3],
        [(1 << 20) + 3, 4],
      ] as const) {
        const data = blockOf(size, seed);
        const reference = Buffer.from(gzip(data, level));
        reference[8] = 0;
        reference[9] = 0xff;
        assert.ok(Buffer.from(deflater.gzip(data)).equals(reference), `level ${level}, ${size} bytes`);
      }
    }
  });

  it("moves an owned block to the thread and hands the same bytes back", async () => {
    const codec = await createCodec("gzip", 6);
    try {
      const original = blockOf(3 << 20, 7);
      const block = owned(original);
      const memory = block.buffer;
      const { chunks, input } = await codec.compress(block, true);
      assert.equal(memory.byteLength, 0, "the caller's buffer was transferred");
      assert.ok(input, "the bytes come back");
      assert.ok(input.equals(original));
      assert.equal(input.buffer.byteLength, 3 << 20, "the whole memory, ready to be reused");
      assert.ok(gunzipSync(Buffer.concat(chunks)).equals(original));
    } finally {
      await codec.close();
    }
  });

  it("hands a closed codec's threads (and a warmed one) to the next codec, the same bytes coming out", async () => {
    const data = blockOf(1 << 20, 11);
    const first = await createCodec("gzip", 2);
    first.warm?.(64 << 20); // more than a block's worth: a thread
    const one = Buffer.concat((await first.compress(data)).chunks);
    await first.close();
    const second = await createCodec("gzip", 2);
    const [again, other] = await Promise.all([second.compress(data), second.compress(blockOf(1 << 20, 12))]);
    await second.close();
    assert.ok(Buffer.concat(again.chunks).equals(one));
    assert.ok(gunzipSync(Buffer.concat(other.chunks)).equals(blockOf(1 << 20, 12)));
  });

  it("lets the process exit with threads parked or warmed", () => {
    const module = new URL("./compression.js", import.meta.url).href;
    const script = `
      const { createCodec } = await import(${JSON.stringify(module)});
      const warmed = await createCodec("gzip", 3);
      warmed.warm(1 << 20);
      await warmed.close();
      const codec = await createCodec("gzip");
      await codec.compress(Buffer.alloc(100000, 7));
      await codec.compress(Buffer.alloc(1000, 7));
      await codec.close();
      console.log("closed");`;
    // A file, not -e: worker threads inherit the flags, and --input-type would not let them load theirs.
    const dir = mkdtempSync(join(tmpdir(), "ocify-codec-exit-"));
    try {
      writeFileSync(join(dir, "exit.mjs"), script);
      const out = execFileSync(process.execPath, [join(dir, "exit.mjs")], { encoding: "utf8", timeout: hangLimitMs });
      assert.equal(out.trim(), "closed", "exited on its own, well before the timeout");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("boots a compressing thread when warmed for more than a block's worth (at level 1), none for less", {
    skip: process.platform !== "linux" && "counts threads in /proc (Linux)",
  }, () => {
    const module = new URL("./compression.js", import.meta.url).href;
    const script = `
      import { readdirSync } from "node:fs";
      import { readFile } from "node:fs/promises";
      const { createCodec } = await import(${JSON.stringify(module)});
      await readFile(${JSON.stringify(fileURLToPath(import.meta.url))}); // libuv's pool threads start now
      const threads = () => readdirSync("/proc/self/task").length;
      const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
      const block = (size, seed) => Buffer.from(Array.from({ length: size }, (_, i) => ((i * seed) >> 7) & 0xff));
      const codec = await createCodec("gzip", 1);
      const before = threads();
      codec.warm(1000);
      await codec.compress(Buffer.alloc(1000, 7));
      await settle();
      const small = threads();
      // One block of a rebuild (a changed file in a big tree): compressed here, the bytes a thread makes.
      codec.warm(3 << 20);
      const here = Buffer.concat((await codec.compress(block(3 << 20, 5))).chunks);
      await settle();
      const one = threads();
      codec.warm(16 << 20);
      await settle();
      const many = threads();
      const there = Buffer.concat((await codec.compress(block(3 << 20, 5))).chunks);
      await codec.close();
      // A slower level keeps the calling thread free for a block's worth: a thread boots for it.
      const slower = await createCodec("gzip", 5);
      slower.warm(3 << 20);
      await settle();
      console.log(JSON.stringify([before, small, one, many, here.equals(there), threads() - many]));
      await slower.close();`;
    const dir = mkdtempSync(join(tmpdir(), "ocify-codec-warm-"));
    try {
      writeFileSync(join(dir, "warm.mjs"), script);
      const out = execFileSync(process.execPath, [join(dir, "warm.mjs")], { encoding: "utf8", timeout: hangLimitMs });
      const [before, small, one, many, same, slower] = JSON.parse(out) as [number, number, number, number, boolean, number];
      assert.equal(small, before, "a small block is compressed on the calling thread: no thread boots for it");
      assert.equal(one, before, "one block's worth is compressed on the calling thread too");
      assert.equal(many, before + 1, "a thread boots when more than a block's worth is to come");
      assert.ok(same, "the calling thread and a compressing thread make the same member");
      assert.equal(slower, 1, "at level 5, a block's worth boots a thread of that level");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves level 0 and the zlib engine to Node's zlib, with an id of their own", async () => {
    assert.match(codecIdOf("gzip", 0) as string, /^gzip\/0\/mem9\/zlib-/);
    assert.match(codecIdOf("gzip", 1, "zlib") as string, /^gzip\/1\/mem9\/zlib-/);
    assert.match(codecIdOf("gzip", 1) as string, /^gzip\/1\/libdeflate-/);
    const codec = await createCodec("gzip", undefined, "zlib");
    assert.match(codec.id, /^gzip\/1\/mem9\/zlib-/);
    const data = blockOf(100_000, 3);
    assert.ok(gunzipSync(Buffer.concat((await codec.compress(data)).chunks)).equals(data));
    await codec.close();
  });

  it("refuses levels outside 0-9 with a one-line hint", async () => {
    await assert.rejects(createCodec("gzip", 10), /gzip level 10 is out of range/);
  });
});
