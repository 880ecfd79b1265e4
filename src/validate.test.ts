import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { createDecompressor, detectCompression } from "./codec.js";
import { type Digest, digestOf } from "./digest.js";
import { DigestMismatchError, InvalidImageError, OcifyError, SizeMismatchError } from "./errors.js";
import type { Descriptor } from "./image/descriptor.js";
import { type RawManifest, rawManifest } from "./image/manifest.js";
import type { ImageSource } from "./image/source.js";
import { MediaType } from "./media-types.js";
import { validateImage } from "./validate.js";

/** A source that hands out stored bytes without verifying them, so validateImage's own checks are tested. */
function memorySource(blobs: Map<string, Buffer>, top: RawManifest): ImageSource {
  return {
    description: "memory",
    async getManifest(digest?: Digest) {
      if (digest === undefined) return top;
      const bytes = blobs.get(digest);
      if (!bytes) throw new Error(`no ${digest}`);
      return rawManifest(bytes);
    },
    async getBlob(descriptor: Descriptor) {
      const bytes = blobs.get(descriptor.digest);
      if (!bytes) throw new Error(`no ${descriptor.digest}`);
      return Readable.from([bytes]);
    },
    async close() {},
  };
}

function tarOf(content: string): Buffer {
  // A one-file tar is enough: validation hashes bytes, it does not parse them.
  const header = Buffer.alloc(512);
  header.write("file.txt", 0);
  return Buffer.concat([header, Buffer.from(content.padEnd(512, "\0"))]);
}

interface Build {
  layers?: { bytes: Buffer; mediaType: string; stored?: Buffer; size?: number }[];
  diffIDs?: string[];
}

function image(build: Build = {}): { source: ImageSource; blobs: Map<string, Buffer>; diffIDs: string[] } {
  const tars = [tarOf("one"), tarOf("two"), tarOf("three")];
  const layers = build.layers ?? [
    { bytes: gzipSync(tars[0]!), mediaType: MediaType.ociLayerGzip },
    { bytes: execFileSync("zstd", ["-q", "-c"], { input: tars[1]! }), mediaType: MediaType.ociLayerZstd },
    { bytes: tars[2]!, mediaType: MediaType.ociLayer },
  ];
  const diffIDs = build.diffIDs ?? tars.map((t) => `sha256:${createHash("sha256").update(t).digest("hex")}`);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIDs } }));
  const blobs = new Map<string, Buffer>([[digestOf(config), config]]);
  const descriptors = layers.map((l) => {
    blobs.set(digestOf(l.bytes), l.stored ?? l.bytes);
    return { mediaType: l.mediaType, digest: digestOf(l.bytes), size: l.size ?? l.bytes.length };
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: descriptors,
    }),
  );
  return { source: memorySource(blobs, rawManifest(manifest)), blobs, diffIDs };
}

describe("validateImage", () => {
  it("recomputes digests, sizes and diffIDs through gzip, zstd and uncompressed layers", async () => {
    const { source, diffIDs } = image();
    const summary = await validateImage(source);
    assert.equal(summary.kind, "image");
    if (summary.kind !== "image") return;
    assert.deepEqual(
      summary.layers.map((l) => l.diffID),
      diffIDs,
    );
    assert.deepEqual(summary.platform, { os: "linux", architecture: "amd64" });
  });

  it("finds a wrong diffID, a wrong layer count, a corrupt or truncated blob and a media type that lies", async () => {
    const tars = [tarOf("one")];
    await assert.rejects(
      validateImage(
        image({ layers: [{ bytes: gzipSync(tars[0]!), mediaType: MediaType.ociLayerGzip }], diffIDs: [digestOf("other")] }).source,
      ),
      (e: unknown) => e instanceof DigestMismatchError && /diffID/.test(e.message),
    );
    await assert.rejects(
      validateImage(image({ layers: [{ bytes: gzipSync(tars[0]!), mediaType: MediaType.ociLayerGzip }], diffIDs: [] }).source),
      /1 layers but 0 diff_ids/,
    );
    const good = gzipSync(tars[0]!);
    const corrupt = Buffer.from(good);
    corrupt[good.length - 1] = (corrupt[good.length - 1] ?? 0) ^ 1;
    await assert.rejects(
      validateImage(
        image({ layers: [{ bytes: good, mediaType: MediaType.ociLayerGzip, stored: corrupt }], diffIDs: [digestOf(tars[0]!)] }).source,
      ),
      OcifyError,
    );
    await assert.rejects(
      validateImage(
        image({ layers: [{ bytes: good, mediaType: MediaType.ociLayerGzip, stored: good.subarray(0, 20) }], diffIDs: [digestOf(tars[0]!)] })
          .source,
      ),
      OcifyError,
    );
    await assert.rejects(
      validateImage(
        image({ layers: [{ bytes: good, mediaType: MediaType.ociLayerGzip, size: good.length + 1 }], diffIDs: [digestOf(tars[0]!)] })
          .source,
      ),
      SizeMismatchError,
    );
    await assert.rejects(
      validateImage(image({ layers: [{ bytes: tars[0]!, mediaType: MediaType.ociLayerGzip }], diffIDs: [digestOf(tars[0]!)] }).source),
      (e: unknown) => e instanceof InvalidImageError && /says gzip, but the blob is none/.test(e.message),
    );
  });

  it("validates every image of an index and checks the child manifests' digests", async () => {
    const { source, blobs } = image();
    const child = await source.getManifest();
    blobs.set(child.digest, child.bytes);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          { mediaType: child.mediaType, digest: child.digest, size: child.bytes.length, platform: { os: "linux", architecture: "arm64" } },
        ],
      }),
    );
    const summary = await validateImage(memorySource(blobs, rawManifest(index)));
    assert.equal(summary.kind, "index");
    if (summary.kind !== "index") return;
    assert.equal(summary.images.length, 1);
    assert.deepEqual(summary.images[0]?.platform, { os: "linux", architecture: "arm64" });
    const lying = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [{ mediaType: child.mediaType, digest: child.digest, size: child.bytes.length + 3 }],
      }),
    );
    await assert.rejects(validateImage(memorySource(blobs, rawManifest(lying))), SizeMismatchError);
  });
});

describe("compression helpers", () => {
  it("detects gzip, zstd and none by magic number", () => {
    assert.equal(detectCompression(gzipSync("x")), "gzip");
    assert.equal(detectCompression(execFileSync("zstd", ["-q", "-c"], { input: "x" })), "zstd");
    assert.equal(detectCompression(tarOf("x")), "none");
  });

  it("decompresses zstd on this Node (zlib from 22.15, else the addon or the zstd command)", async () => {
    const data = Buffer.from("zstd round trip ".repeat(10_000));
    const decompressor = await createDecompressor("zstd");
    assert.ok(decompressor);
    const chunks: Buffer[] = [];
    await pipeline(
      Readable.from([execFileSync("zstd", ["-q", "-c"], { input: data })]),
      decompressor,
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) chunks.push(chunk);
      },
    );
    assert.ok(Buffer.concat(chunks).equals(data));
  });
});
