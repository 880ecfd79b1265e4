import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import { emptyImage } from "../image/image.js";
import * as mutate from "../image/mutate.js";
import { openDestination, openSource, parseTransportReference } from "../transport/transport.js";
import { validateImage } from "../validate.js";
import { type FileEntry, layerFromFiles, layerFromTar } from "./stream.js";

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), "ocify-stream-layer-"));
});
after(() => rmSync(work, { recursive: true, force: true }));

function entries(): FileEntry[] {
  const big = Buffer.alloc(3 << 20, "x");
  return [
    { path: "app/", type: "directory" },
    { path: "app/hello.txt", content: "hello\n", mode: 0o600, uid: 1000, gid: 1000 },
    { path: "app/big.bin", content: Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]), size: big.length },
    { path: "app/link", type: "symlink", linkname: "hello.txt" },
  ];
}

describe("layers from memory and streams", () => {
  it("makes a layer from entries that GNU tar reads, the same digest every time, and an image that validates", async () => {
    const cacheDir = join(work, "cache");
    const layer = await layerFromFiles(entries(), { cacheDir });
    const again = await layerFromFiles(entries(), { cacheDir: join(work, "other-cache") });
    assert.equal(again.descriptor.digest, layer.descriptor.digest);
    assert.equal(await again.diffID(), await layer.diffID());
    const blob = Buffer.concat(await (await layer.open()).toArray());
    assert.equal(blob[9], 0xff, "canonical gzip header (OS unknown)");
    const listing = execFileSync("tar", ["-tvzf", "-", "--numeric-owner"], { input: blob }).toString();
    assert.match(listing, /^-rw------- 1000\/1000\s+6 .* app\/hello\.txt$/m);
    assert.match(listing, /^-rw-r--r-- 0\/0\s+3145728 .* app\/big\.bin$/m);
    assert.match(listing, /^lrwxr-xr-x 0\/0 .* app\/link -> hello\.txt$/m);
    const image = mutate.append(emptyImage(), [{ layer, history: { created_by: "from memory" } }]);
    const path = join(work, "layout");
    await copyImage(image, await openDestination(parseTransportReference(`oci:${path}:t`)));
    const summary = await validateImage(await openSource(parseTransportReference(`oci:${path}:t`)));
    assert.equal(summary.kind === "image" && summary.layers[0]?.diffID, await layer.diffID());
  });

  it("takes a tar from a generator, uncompressed or zstd", async () => {
    const tar = execFileSync("tar", ["-cf", "-", "-C", work, "cache"]);
    async function* chunks() {
      for (let at = 0; at < tar.length; at += 10_000) yield tar.subarray(at, at + 10_000);
    }
    const plain = await layerFromTar(chunks(), { cacheDir: join(work, "cache"), compression: "none" });
    assert.equal(plain.descriptor.size, tar.length);
    assert.equal(plain.descriptor.digest, await plain.diffID());
    const zstd = await layerFromTar(chunks(), { cacheDir: join(work, "cache"), compression: "zstd" });
    assert.equal(await zstd.diffID(), await plain.diffID());
    const back = execFileSync("zstd", ["-dcq"], { input: Buffer.concat(await (await zstd.open()).toArray()) });
    assert.ok(back.equals(tar));
  });

  it("fails on a stream shorter than its size and leaves nothing in the cache", async () => {
    const cacheDir = join(work, "failing");
    await assert.rejects(
      layerFromFiles([{ path: "a", content: Readable.from([Buffer.from("abc")]), size: 10 }], { cacheDir }),
      /3 bytes, not the 10/,
    );
    assert.deepEqual(readdirSync(join(cacheDir, "blobs", "sha256")), []);
    await assert.rejects(layerFromFiles([{ path: "../etc/passwd", content: "x" }], { cacheDir }), /not a path inside the image/);
  });
});
