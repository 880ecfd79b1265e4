/**
 * Image fixtures shared by the transport tests (no tests of its own; named *.test.ts so it is never shipped):
 * generated from a seed, written as OCI layouts, and a local copy helper that speaks only the
 * ImageSource/ImageDestination API, so the transports are tested without the product's copy.ts.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Digest } from "../digest.js";
import type { Descriptor } from "../image/descriptor.js";
import { parseImageIndex, parseImageManifest } from "../image/manifest.js";
import { isIndexMediaType, MediaType } from "../media-types.js";
import { gnuTar, writeBaseImageLayout } from "../test-support/base-image.js";
import type { ImageDestination, ImageSource } from "./transport.js";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Deterministic pseudo-random bytes (xorshift32), incompressible like a binary. */
export function seededBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function writeTree(files: Record<string, Buffer | string>): string {
  const root = mkdtempSync(join(tmpdir(), "ocify-fixture-"));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(root, name, ".."), { recursive: true });
    writeFileSync(join(root, name), content);
  }
  return root;
}

function layerTar(files: Record<string, Buffer | string>): Buffer {
  const root = writeTree(files);
  try {
    return gnuTar(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Options of writeMultiLayerLayout. */
export interface MultiLayerOptions {
  seed?: number;
  architecture?: string;
  /** Leave out the zstd layer (for consumers that cannot read zstd). */
  zstd?: boolean;
  /** Size of the large incompressible file in the first layer. */
  bigFileBytes?: number;
}

/**
 * Write a four-layer OCI image (gzip with a large incompressible file and long names, zstd, uncompressed,
 * gzip with a whiteout) into an OCI layout under `tag`; returns the manifest digest.
 */
export function writeMultiLayerLayout(layoutDir: string, tag: string, options: MultiLayerOptions = {}): Digest {
  const seed = options.seed ?? 1;
  const deep = `usr/share/${"long-directory-name-".repeat(4)}/${"file-with-a-long-name-".repeat(5)}.txt`;
  const layerFiles: { files: Record<string, Buffer | string>; compression: "gzip" | "zstd" | "none" }[] = [
    {
      compression: "gzip",
      files: {
        "opt/app/big.bin": seededBytes(options.bigFileBytes ?? 3 << 20, seed),
        "opt/app/old.txt": "to be deleted\n",
        [deep]: "deep\n",
        ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`etc/conf.d/${i}.conf`, `value=${i * seed}\n`])),
      },
    },
    {
      compression: "zstd",
      files: { "opt/app/zstd-layer.txt": `zstd ${seed}\n`.repeat(2000), "opt/app/data.bin": seededBytes(100_000, seed + 1) },
    },
    { compression: "none", files: { "opt/app/plain.txt": `plain ${seed}\n` } },
    { compression: "gzip", files: { "opt/app/.wh.old.txt": "", "opt/app/version": `${seed}\n` } },
  ];
  const layers = layerFiles.filter((l) => options.zstd !== false || l.compression !== "zstd");
  const blobs: Buffer[] = [];
  const descriptors: Descriptor[] = [];
  const diffIDs: string[] = [];
  for (const layer of layers) {
    const tar = layerTar(layer.files);
    diffIDs.push(`sha256:${sha256(tar)}`);
    const blob =
      layer.compression === "gzip"
        ? gzipSync(tar, { level: 1 })
        : layer.compression === "zstd"
          ? execFileSync("zstd", ["-3", "-q", "-c"], { input: tar, maxBuffer: 1 << 30 })
          : tar;
    blobs.push(blob);
    const mediaType =
      layer.compression === "gzip" ? MediaType.ociLayerGzip : layer.compression === "zstd" ? MediaType.ociLayerZstd : MediaType.ociLayer;
    descriptors.push({ mediaType, digest: `sha256:${sha256(blob)}`, size: blob.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      created: "2024-01-02T03:04:05Z",
      architecture: options.architecture ?? "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin:/bin", `SEED=${seed}`], Cmd: ["/opt/app/run"], WorkingDir: "/opt/app", Labels: { fixture: "multi" } },
      rootfs: { type: "layers", diff_ids: diffIDs },
      history: [
        ...layers.map((l, i) => ({ created: "2024-01-02T03:04:05Z", created_by: `layer ${i} (${l.compression})` })),
        { created: "2024-01-02T03:04:05Z", created_by: "ENV only", empty_layer: true },
      ],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: `sha256:${sha256(config)}`, size: config.length },
      layers: descriptors,
      annotations: { "org.example.fixture": "multi-layer" },
    }),
  );
  const blobDir = join(layoutDir, "blobs", "sha256");
  mkdirSync(blobDir, { recursive: true });
  for (const blob of [...blobs, config, manifest]) writeFileSync(join(blobDir, sha256(blob)), blob);
  writeFileSync(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const digest: Digest = `sha256:${sha256(manifest)}`;
  addIndexEntry(layoutDir, { mediaType: MediaType.ociManifest, digest, size: manifest.length }, tag);
  return digest;
}

/** Add (or replace, by tag) an entry in a layout's index.json. */
export function addIndexEntry(layoutDir: string, descriptor: Descriptor, tag: string): void {
  const path = join(layoutDir, "index.json");
  let manifests: Descriptor[] = [];
  try {
    manifests = (JSON.parse(readFileSync(path, "utf8")) as { manifests: Descriptor[] }).manifests;
  } catch {
    // new layout
  }
  manifests = manifests.filter((d) => d.annotations?.["org.opencontainers.image.ref.name"] !== tag);
  manifests.push({ ...descriptor, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(path, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
}

/**
 * A layout holding tags `base` (busybox base), `multi` (four layers, one zstd), `multi-gzip` (the same without
 * the zstd layer, for clients that cannot read zstd) and `index` (linux/amd64 and linux/arm64).
 */
export function writeFixtureLayout(
  layoutDir: string,
  options: { seed?: number } = {},
): { base: Digest; multi: Digest; "multi-gzip": Digest; index: Digest } {
  mkdirSync(layoutDir, { recursive: true });
  const baseDir = mkdtempSync(join(tmpdir(), "ocify-fixture-base-"));
  try {
    const base = writeBaseImageLayout(baseDir, "base", { seed: options.seed ?? 0 }) as Digest;
    execFileSync("cp", ["-r", `${baseDir}/blobs`, layoutDir]);
    writeFileSync(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const baseSize = readFileSync(join(layoutDir, "blobs", "sha256", base.slice(7))).length;
    addIndexEntry(layoutDir, { mediaType: MediaType.ociManifest, digest: base, size: baseSize }, "base");
    const multi = writeMultiLayerLayout(layoutDir, "multi", { seed: options.seed ?? 1 });
    const multiGzip = writeMultiLayerLayout(layoutDir, "multi-gzip", { seed: options.seed ?? 1, zstd: false });
    const arm = writeMultiLayerLayout(layoutDir, "arm-only", {
      seed: (options.seed ?? 1) + 100,
      architecture: "arm64",
      bigFileBytes: 200_000,
    });
    const size = (d: string) => readFileSync(join(layoutDir, "blobs", "sha256", d.slice(7))).length;
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          { mediaType: MediaType.ociManifest, digest: base, size: size(base), platform: { architecture: "amd64", os: "linux" } },
          {
            mediaType: MediaType.ociManifest,
            digest: arm,
            size: size(arm),
            platform: { architecture: "arm64", os: "linux", variant: "v8" },
          },
        ],
      }),
    );
    const indexDigest: Digest = `sha256:${sha256(index)}`;
    writeFileSync(join(layoutDir, "blobs", "sha256", sha256(index)), index);
    addIndexEntry(layoutDir, { mediaType: MediaType.ociIndex, digest: indexDigest, size: index.length }, "index");
    return { base, multi, "multi-gzip": multiGzip, index: indexDigest };
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
}

async function copyBlobs(source: ImageSource, destination: ImageDestination, blobs: Descriptor[]): Promise<void> {
  const unique = [...new Map(blobs.map((d) => [d.digest, d])).values()];
  // All at once: archive destinations must cope with blobs arriving concurrently and in any order.
  await Promise.all(
    unique.reverse().map(async (d) => {
      if (!(await destination.hasBlob(d))) await destination.putBlob(d, await source.getBlob(d));
    }),
  );
}

/** Copy the source's top manifest (an image, or an index with all its images) to the destination and commit. */
export async function copyAll(source: ImageSource, destination: ImageDestination): Promise<Digest> {
  try {
    const top = await source.getManifest();
    if (isIndexMediaType(top.mediaType)) {
      for (const child of parseImageIndex(top).manifests) {
        const raw = await source.getManifest(child.digest);
        const manifest = parseImageManifest(raw);
        await copyBlobs(source, destination, [manifest.config, ...manifest.layers]);
        await destination.putManifest(raw, { top: false });
      }
    } else {
      const manifest = parseImageManifest(top);
      await copyBlobs(source, destination, [manifest.config, ...manifest.layers]);
    }
    await destination.putManifest(top, { top: true });
    await destination.commit();
    return top.digest;
  } catch (error) {
    await destination.abort();
    throw error;
  } finally {
    await source.close();
  }
}
