import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { content, random, tempDir } from "./fixtures.test.js";

const work = tempDir("ocify-layer-rss-");
after(() => work.remove());

const gib = 1024 * 1024 * 1024;

/** Write a 1 GiB file of seeded, compressible content (4 MiB pieces, each made distinct). */
function writeBigFile(path: string): void {
  const piece = content(random(5), 4 << 20);
  const fd = openSync(path, "w");
  try {
    for (let i = 0; i < gib / piece.length; i++) {
      piece.writeUInt32LE(i, (i * 4099) % (piece.length - 4));
      writeSync(fd, piece);
    }
  } finally {
    closeSync(fd);
  }
}

// The child builds the layer, streaming the blob to a tee that hashes it, and reports its peak RSS.
const child = `
import { createHash } from "node:crypto";
const { buildLayer } = await import(process.argv[2]);
let teeDigest;
const layer = await buildLayer({ source: process.argv[3], dest: "/data/" }, {
  cacheDir: process.argv[4], compression: "gzip", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
  tee: async (stream) => { const hash = createHash("sha256"); for await (const chunk of stream) hash.update(chunk); teeDigest = "sha256:" + hash.digest("hex"); },
});
const reread = createHash("sha256");
for await (const chunk of layer.open()) reread.update(chunk);
console.log(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS, tarSize: layer.tarSize, blocks: layer.blocks,
  digest: layer.descriptor.digest, teeDigest, reread: "sha256:" + reread.digest("hex") }));
`;

describe("memory", () => {
  it("builds a layer from a 1 GiB file in under 200 MiB of RSS, in a child process", () => {
    const file = join(work.path, "big.bin");
    writeBigFile(file);
    const build = fileURLToPath(new URL("./build.js", import.meta.url));
    const script = join(work.path, "child.mjs");
    writeFileSync(script, child);
    const out = execFileSync(process.execPath, [script, build, file, join(work.path, "cache")], {
      maxBuffer: 1 << 20,
      timeout: 300_000,
    });
    const result = JSON.parse(out.toString()) as {
      maxRSS: number;
      tarSize: number;
      blocks: number;
      digest: string;
      teeDigest: string;
      reread: string;
    };
    const rssMiB = result.maxRSS / 1024;
    console.log(`# peak RSS building a 1 GiB layer: ${rssMiB.toFixed(0)} MiB, ${result.blocks} blocks`);
    assert.ok(result.tarSize > gib, "the whole file went into the tar");
    assert.ok(result.blocks >= 256);
    assert.equal(result.teeDigest, result.digest, "tee saw the blob");
    assert.equal(result.reread, result.digest, "open() gives the blob");
    assert.ok(rssMiB < 200, `peak RSS ${rssMiB.toFixed(0)} MiB`);
  });
});
