/**
 * An entry of the registry layer cache (`--cache-repo`): which compressed blob ocify made from a layer's
 * tar, stored as a small OCI artifact in a repository the user names, tagged with the entry's key.
 *
 * The key is input-addressed: the tar's digest (the diffID), the layer's media type, the codec that
 * compressed it (algorithm, level, library and its version) and ocify's layer format (how a tar is cut into
 * blocks and framed). Any machine that makes the same tar with the same settings makes the same blob, so
 * it can take the blob the registry already holds instead of compressing and uploading it again.
 *
 * One tag per key (as kaniko keeps one image per cache key), not one index of every entry (as BuildKit's
 * registry cache does): a look-up is one GET of a small manifest, concurrent builds never overwrite each
 * other's entries, and nothing grows that every build must download.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../canonical-json.js";
import { type Digest, digestOf, isDigest } from "../digest.js";
import type { Descriptor } from "../image/descriptor.js";
import { encodeJson, type RawManifest } from "../image/manifest.js";
import { defaultPolicy } from "../layer/blocks.js";
import { MediaType } from "../media-types.js";

/**
 * ocify's layer format: bump it whenever the same tar and codec would give other blob bytes (the block
 * cuts, the gzip member framing). The block policy is part of the key as well.
 */
export const layerCacheFormat = 1;

/** The artifact type of a cache entry's manifest. */
export const layerCacheArtifactType = "application/vnd.ocify.layer-cache.v1";

/** The OCI empty descriptor (image-spec manifest.md, "Guidance for an Empty Descriptor"): the entry's config. */
export const emptyConfig: Descriptor = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

/** The bytes of the empty config blob, `{}`. */
export const emptyConfigBytes = Buffer.from("{}");

/** What a cached layer was made from: everything its blob's bytes depend on. */
export interface LayerCacheInputs {
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** The layer's media type (names the compression). */
  mediaType: string;
  /** The codec's id: algorithm, level, library and version (`gzip/1/libdeflate-0.1.0`). */
  codecId: string;
}

const annotation = {
  key: "dev.ocify.layer-cache.key",
  diffID: "dev.ocify.layer-cache.diff-id",
  codec: "dev.ocify.layer-cache.codec",
  format: "dev.ocify.layer-cache.format",
} as const;

/** The entry's key: sha256 over the inputs, the layer format and the block policy (64 hex digits). */
export function layerCacheKey(inputs: LayerCacheInputs): string {
  const keyed = {
    format: layerCacheFormat,
    blocks: defaultPolicy,
    diffID: inputs.diffID,
    mediaType: inputs.mediaType,
    codec: inputs.codecId,
  };
  return createHash("sha256").update(canonicalJson(keyed)).digest("hex");
}

/** The tag an entry is stored under: its key, which a tag can hold (`[\w][\w.-]{0,127}`). */
export function layerCacheTag(inputs: LayerCacheInputs): string {
  return layerCacheKey(inputs);
}

/** The manifest of an entry: the empty config, the blob as its one layer, the inputs as annotations. */
export function layerCacheManifest(inputs: LayerCacheInputs, blob: Pick<Descriptor, "digest" | "size">): RawManifest {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: layerCacheArtifactType,
    config: emptyConfig,
    layers: [{ mediaType: inputs.mediaType, digest: blob.digest, size: blob.size }],
    annotations: {
      [annotation.key]: layerCacheKey(inputs),
      [annotation.diffID]: inputs.diffID,
      [annotation.codec]: inputs.codecId,
      [annotation.format]: String(layerCacheFormat),
    },
  };
  const bytes = encodeJson(manifest);
  return { bytes, mediaType: MediaType.ociManifest, digest: digestOf(bytes) };
}

/** An entry read back: the blob's descriptor, or why the entry is not one for these inputs. */
export type LayerCacheEntry = { ok: true; descriptor: Descriptor } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Check a fetched entry against the inputs it was looked up for: an OCI manifest of the cache's artifact
 * type whose annotations name exactly these inputs, with one layer of the expected media type and a valid
 * sha256 digest and size. Anything else is not a hit (a foreign tag, an older format, a damaged entry).
 */
export function readLayerCacheEntry(raw: RawManifest, inputs: LayerCacheInputs): LayerCacheEntry {
  let json: unknown;
  try {
    json = JSON.parse(raw.bytes.toString("utf8"));
  } catch {
    return { ok: false, reason: "the entry is not JSON" };
  }
  if (!isRecord(json) || json.schemaVersion !== 2 || json.artifactType !== layerCacheArtifactType)
    return { ok: false, reason: "not an ocify layer cache entry" };
  const notes = isRecord(json.annotations) ? json.annotations : {};
  const expected: Record<string, string> = {
    [annotation.key]: layerCacheKey(inputs),
    [annotation.diffID]: inputs.diffID,
    [annotation.codec]: inputs.codecId,
    [annotation.format]: String(layerCacheFormat),
  };
  for (const [name, value] of Object.entries(expected)) {
    if (notes[name] !== value) return { ok: false, reason: `its ${name} is not ${value}` };
  }
  const layers = Array.isArray(json.layers) ? json.layers : [];
  const layer: unknown = layers[0];
  if (layers.length !== 1 || !isRecord(layer)) return { ok: false, reason: "it does not hold exactly one blob" };
  const { mediaType, digest, size } = layer;
  if (mediaType !== inputs.mediaType) return { ok: false, reason: `its blob is ${String(mediaType)}, not ${inputs.mediaType}` };
  if (typeof digest !== "string" || !isDigest(digest) || !digest.startsWith("sha256:"))
    return { ok: false, reason: "its blob has no valid sha256 digest" };
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0) return { ok: false, reason: "its blob has no valid size" };
  return { ok: true, descriptor: { mediaType, digest, size } };
}
