/** Reading a layer's facts streams (memory does not grow with the layer), and remembered facts are only trusted whole. */
import assert from "node:assert/strict";
import { createCipheriv, createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import type { Digest } from "./digest.js";
import { readLayerFacts, rememberedLayerFacts, rememberLayerFacts } from "./layer-facts.js";

/** `size` incompressible bytes (an AES-CTR keystream), a MiB at a time: the same bytes on every call. */
function noise(size: number): Readable {
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const chunk = Buffer.alloc(1 << 20);
  let left = size;
  return new Readable({
    read() {
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n > 0 ? cipher.update(chunk.subarray(0, n)) : null);
    },
  });
}

describe("layer facts", () => {
  const work = mkdtempSync(join(tmpdir(), "ocify-layer-facts-"));
  after(() => rmSync(work, { recursive: true, force: true }));

  it("finds size, compression and diffID of gzip and plain blobs", async () => {
    const tar = Buffer.alloc(3072, 1);
    const gzip = gzipSync(tar);
    const diffID = `sha256:${createHash("sha256").update(tar).digest("hex")}`;
    assert.deepEqual(await readLayerFacts(Readable.from([gzip]), "gzip"), { size: gzip.length, compression: "gzip", diffID });
    assert.deepEqual(await readLayerFacts(Readable.from([tar]), "tar"), { size: tar.length, compression: "none", diffID });
    await assert.rejects(readLayerFacts(Readable.from([gzip.subarray(0, 20)]), "cut"), /cut: cannot decompress \(gzip\)/);
  });

  it("reads a 512 MiB layer with flat memory", { timeout: 600_000 }, async () => {
    const size = 512 << 20;
    const before = process.memoryUsage().rss;
    // Incompressible and not compressed: holding the blob or the tar would show.
    const facts = await readLayerFacts(noise(size), "big");
    // The kernel's peak for this process (KiB), sampled by nothing that could miss it.
    const peak = process.resourceUsage().maxRSS * 1024;
    assert.equal(facts.compression, "none");
    assert.equal(facts.size, size);
    const expected = createHash("sha256");
    for await (const chunk of noise(size)) expected.update(chunk as Buffer);
    assert.equal(facts.diffID, `sha256:${expected.digest("hex")}`);
    const grown = (peak - before) >> 20;
    assert.ok(grown < 96, `memory grew by ${grown} MiB while reading a 512 MiB layer`);
  });

  it("remembers facts by blob digest and ignores a damaged entry", async () => {
    const digest = `sha256:${"a".repeat(64)}` as Digest;
    const facts = { size: 10, compression: "gzip" as const, diffID: `sha256:${"b".repeat(64)}` as Digest };
    assert.equal(rememberedLayerFacts(work, digest), undefined);
    await rememberLayerFacts(work, digest, facts);
    assert.deepEqual(rememberedLayerFacts(work, digest), facts);
    mkdirSync(join(work, "layer-facts"), { recursive: true });
    writeFileSync(join(work, "layer-facts", `sha256-${"a".repeat(64)}.json`), '{"size":10,"compression":"gzip"');
    assert.equal(rememberedLayerFacts(work, digest), undefined);
  });
});
