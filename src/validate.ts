/**
 * Image validation: read an image from any ImageSource and recompute everything that can be recomputed —
 * manifest and blob digests and sizes, each layer's diffID after decompression — against the descriptors
 * and the config's `rootfs.diff_ids`. Used by the conformance suite and by `ocify verify`-style checks.
 */
import { createHash } from "node:crypto";
import type { Duplex, Readable } from "node:stream";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDecompressor, detectCompression } from "./codec.js";
import { type Digest, Digester, digestOf, shortDigest } from "./digest.js";
import { DigestMismatchError, InvalidImageError, OcifyError, SizeMismatchError } from "./errors.js";
import { parseImageConfig } from "./image/config.js";
import type { Descriptor, Platform } from "./image/descriptor.js";
import { maxManifestBytes, parseImageIndex, parseImageManifest, type RawManifest } from "./image/manifest.js";
import type { ImageSource } from "./image/source.js";
import { isIndexMediaType, layerCompression, MediaType } from "./media-types.js";

/** One layer as validated: its blob digest and size and the digest of its uncompressed tar. */
export interface LayerSummary {
  digest: Digest;
  size: number;
  mediaType: string;
  diffID: Digest;
}

/** A validated single image. */
export interface ImageSummary {
  kind: "image";
  manifestDigest: Digest;
  mediaType: string;
  configDigest: Digest;
  configBytes: Buffer;
  layers: LayerSummary[];
  platform?: Platform;
}

/** A validated index: each image manifest it lists (other children are only digest-checked). */
export interface IndexSummary {
  kind: "index";
  manifestDigest: Digest;
  mediaType: string;
  images: ImageSummary[];
}

/** What validateImage returns. */
export type ValidationSummary = ImageSummary | IndexSummary;

/** Options of validateImage. */
export interface ValidateOptions {
  signal?: AbortSignal;
  /** The digest to validate instead of the source's top manifest. */
  digest?: Digest;
}

async function readAll(stream: Readable, cap: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > cap) {
      stream.destroy();
      throw new InvalidImageError(`${what} is larger than ${cap} bytes`, { hint: "it is not an image config" });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

function checkManifest(raw: RawManifest, expected: Pick<Descriptor, "digest"> & Partial<Descriptor>, what: string): void {
  const actual = digestOf(raw.bytes);
  if (expected.digest.startsWith("sha256:") && actual !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual);
  if (expected.size !== undefined && raw.bytes.length !== expected.size) throw new SizeMismatchError(what, expected.size, raw.bytes.length);
}

const configMediaTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

async function validateBlob(source: ImageSource, descriptor: Descriptor, what: string, signal?: AbortSignal): Promise<void> {
  const digester = new Digester(descriptor.digest.startsWith("sha512:") ? "sha512" : "sha256");
  await pipeline(await source.getBlob(descriptor, signal), digester, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
  if (digester.size !== descriptor.size) throw new SizeMismatchError(what, descriptor.size, digester.size);
  if (digester.digest !== descriptor.digest) throw new DigestMismatchError(what, descriptor.digest, digester.digest);
}

async function validateLayer(source: ImageSource, layer: Descriptor, what: string, signal?: AbortSignal): Promise<Digest> {
  const blob = await source.getBlob(layer, signal);
  const digester = new Digester(layer.digest.startsWith("sha512:") ? "sha512" : "sha256");
  const diffHash = createHash("sha256");
  let head: Buffer | undefined;
  const compression = layerCompression(layer.mediaType) ?? "none";
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, cb) {
      diffHash.update(chunk);
      cb();
    },
  });
  // Check the first bytes against the media type: a layer whose media type lies breaks clients.
  const sniffed = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _e, cb) {
      if (!head) {
        head = chunk;
        const actual = detectCompression(chunk);
        if (actual !== compression) {
          cb(
            new InvalidImageError(`${what}: media type ${layer.mediaType} says ${compression}, but the blob is ${actual}`, {
              hint: "clients decompress by media type; fix the manifest",
            }),
          );
          return;
        }
      }
      cb(null, chunk);
    },
  });
  const decompressor = await createDecompressor(compression);
  const stages: (Duplex | Writable)[] = decompressor ? [decompressor, sink] : [sink];
  try {
    await pipeline(blob, digester, sniffed, ...(stages as [Writable]), { signal });
  } catch (error) {
    if (error instanceof OcifyError || signal?.aborted) throw error;
    throw new InvalidImageError(`${what}: cannot decompress (${compression}): ${(error as Error).message}`, {
      hint: "the layer blob is corrupt",
      cause: error,
    });
  }
  if (digester.size !== layer.size) throw new SizeMismatchError(what, layer.size, digester.size);
  if (digester.digest !== layer.digest) throw new DigestMismatchError(what, layer.digest, digester.digest);
  return `sha256:${diffHash.digest("hex")}`;
}

async function validateImageManifest(source: ImageSource, raw: RawManifest, options: ValidateOptions): Promise<ImageSummary> {
  const what = `manifest ${shortDigest(raw.digest)}`;
  const manifest = parseImageManifest(raw, what);
  const configBlob = await source.getBlob(manifest.config, options.signal);
  const configBytes = await readAll(configBlob, maxManifestBytes, `${what}: config`);
  const configDigest = digestOf(configBytes);
  if (configDigest !== manifest.config.digest) throw new DigestMismatchError(`${what}: config`, manifest.config.digest, configDigest);
  if (configBytes.length !== manifest.config.size) throw new SizeMismatchError(`${what}: config`, manifest.config.size, configBytes.length);
  const config = parseImageConfig(configBytes, `${what}: config`);
  const diffIDs = config.rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length) {
    throw new InvalidImageError(`${what}: ${manifest.layers.length} layers but ${diffIDs.length} diff_ids in the config`, {
      hint: "the manifest and config do not belong together",
    });
  }
  const layers: LayerSummary[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    const layerWhat = `${what}: layer ${i} ${shortDigest(layer.digest)}`;
    const diffID = await validateLayer(source, layer, layerWhat, options.signal);
    if (diffID !== diffIDs[i]) throw new DigestMismatchError(`${layerWhat}: diffID`, diffIDs[i] ?? "(none)", diffID);
    layers.push({ digest: layer.digest, size: layer.size, mediaType: layer.mediaType, diffID });
  }
  const summary: ImageSummary = { kind: "image", manifestDigest: raw.digest, mediaType: raw.mediaType, configDigest, configBytes, layers };
  summary.platform = { os: config.os, architecture: config.architecture };
  if (config.variant) summary.platform.variant = config.variant;
  return summary;
}

/**
 * Read an image (or every image of an index) from `source` and recompute its manifest, config and layer
 * digests and sizes and every layer's diffID; throws an OcifyError naming the first thing that is wrong.
 */
export async function validateImage(source: ImageSource, options: ValidateOptions = {}): Promise<ValidationSummary> {
  const top = await source.getManifest(options.digest);
  if (options.digest) checkManifest(top, { digest: options.digest }, `manifest ${shortDigest(options.digest)}`);
  if (!isIndexMediaType(top.mediaType)) return validateImageManifest(source, top, options);
  const index = parseImageIndex(top, `index ${shortDigest(top.digest)}`);
  const images: ImageSummary[] = [];
  for (const child of index.manifests) {
    const what = `index ${shortDigest(top.digest)}: manifest ${shortDigest(child.digest)}`;
    const raw = await source.getManifest(child.digest);
    checkManifest(raw, child, what);
    if (isIndexMediaType(raw.mediaType)) {
      const nested = await validateImage(source, { ...options, digest: child.digest });
      if (nested.kind === "index") images.push(...nested.images);
      continue;
    }
    const manifest = parseImageManifest(raw, what);
    if (!configMediaTypes.has(manifest.config.mediaType)) {
      // An artifact (attestation, signature): its blobs are checked, it has no diffIDs.
      for (const blob of [manifest.config, ...manifest.layers]) await validateBlob(source, blob, `${what}: blob`, options.signal);
      continue;
    }
    const summary = await validateImageManifest(source, raw, options);
    if (child.platform) summary.platform = child.platform;
    images.push(summary);
  }
  return { kind: "index", manifestDigest: top.digest, mediaType: top.mediaType, images };
}
