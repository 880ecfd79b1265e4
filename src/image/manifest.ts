/** Image manifests and indexes (image-spec manifest.md, image-index.md; Docker schema 2), raw and parsed. */
import { type Digest, digestOf, isDigest } from "../digest.js";
import { InvalidImageError } from "../errors.js";
import { convertLayerMediaType, familyMediaTypes, isIndexMediaType, isManifestMediaType, MediaType } from "../media-types.js";
import type { Descriptor } from "./descriptor.js";

/** A single-image manifest. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An image index or Docker manifest list. */
export interface IndexManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** Either kind of manifest. */
export type Manifest = ImageManifest | IndexManifest;

/** Manifest bytes as stored, with their media type and digest: digests are over these exact bytes. */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** The most manifest or config JSON we read (distribution caps manifests at 4 MiB). */
export const maxManifestBytes = 4 << 20;

/** Build a RawManifest from bytes, taking the media type from the JSON when the transport gave none. */
export function rawManifest(bytes: Buffer, mediaType?: string): RawManifest {
  let type = mediaType && mediaType !== "application/json" && mediaType !== "text/plain" ? mediaType.split(";")[0]!.trim() : undefined;
  if (!type) type = guessMediaType(bytes);
  return { bytes, mediaType: type, digest: digestOf(bytes) };
}

/** Serialize a manifest or config deterministically (insertion order, no whitespace). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new InvalidImageError(`${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidImageError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function guessMediaType(bytes: Buffer): string {
  const json = parseJson(bytes, "manifest");
  if (typeof json.mediaType === "string") return json.mediaType;
  if (Array.isArray(json.manifests)) return MediaType.ociIndex;
  if (json.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
  return MediaType.ociManifest;
}

function checkDescriptor(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (
    typeof d !== "object" ||
    d === null ||
    typeof d.mediaType !== "string" ||
    typeof d.digest !== "string" ||
    !isDigest(d.digest) ||
    typeof d.size !== "number" ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw new InvalidImageError(`${what} is not a valid descriptor (mediaType, digest, size)`);
  }
  return d as Descriptor;
}

/** Parse manifest bytes as a single-image manifest; throws InvalidImageError naming `what`. */
export function parseImageManifest(raw: RawManifest, what = "manifest"): ImageManifest {
  if (!isManifestMediaType(raw.mediaType)) {
    throw new InvalidImageError(`${what} has media type ${raw.mediaType}, not an image manifest`, {
      hint: raw.mediaType.includes("v1+") ? "Docker schema 1 images are not supported; re-push the image with a current client" : undefined,
    });
  }
  const json = parseJson(raw.bytes, what);
  if (json.schemaVersion !== 2) throw new InvalidImageError(`${what} has schemaVersion ${String(json.schemaVersion)}, expected 2`);
  if (!Array.isArray(json.layers)) throw new InvalidImageError(`${what} has no layers array`);
  checkDescriptor(json.config, `${what} config`);
  for (const [i, layer] of json.layers.entries()) checkDescriptor(layer, `${what} layer ${i}`);
  return json as unknown as ImageManifest;
}

/** Parse manifest bytes as an index; throws InvalidImageError naming `what`. */
export function parseImageIndex(raw: RawManifest, what = "index"): IndexManifest {
  if (!isIndexMediaType(raw.mediaType)) throw new InvalidImageError(`${what} has media type ${raw.mediaType}, not an index`);
  const json = parseJson(raw.bytes, what);
  if (json.schemaVersion !== 2) throw new InvalidImageError(`${what} has schemaVersion ${String(json.schemaVersion)}, expected 2`);
  if (!Array.isArray(json.manifests)) throw new InvalidImageError(`${what} has no manifests array`);
  for (const [i, m] of json.manifests.entries()) checkDescriptor(m, `${what} entry ${i}`);
  return json as unknown as IndexManifest;
}

/** The descriptor of a raw manifest, as an index entry or a transport would refer to it. */
export function manifestDescriptor(raw: RawManifest): Descriptor {
  return { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.length };
}

/**
 * Convert an image manifest to the other family (Docker schema 2 ⇄ OCI), as skopeo does when a destination
 * needs it: media types change, blobs and config bytes stay, so only the manifest digest changes.
 */
export function convertImageManifest(raw: RawManifest, format: "oci" | "docker", what = "manifest"): RawManifest {
  const manifest = parseImageManifest(raw, what);
  const types = familyMediaTypes(format);
  if (raw.mediaType === types.manifest) return raw;
  const converted: ImageManifest = {
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { ...manifest.config, mediaType: types.config },
    layers: manifest.layers.map((layer) => ({ ...layer, mediaType: convertLayerMediaType(layer.mediaType, format) })),
  };
  if (format === "oci" && manifest.annotations) converted.annotations = manifest.annotations;
  return rawManifest(encodeJson(converted), types.manifest);
}
