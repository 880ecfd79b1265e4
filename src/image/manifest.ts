/** Image manifests and indexes (image-spec manifest.md, image-index.md; Docker schema 2), raw and parsed. */
import { createHash } from "node:crypto";
import { canonicalJson } from "../canonical-json.js";
import { type Digest, digestOf, isDigest, parseDigest } from "../digest.js";
import { DigestMismatchError, InvalidImageError } from "../errors.js";
import {
  convertLayerMediaType,
  familyMediaTypes,
  isIndexMediaType,
  isManifestMediaType,
  isSchema1MediaType,
  MediaType,
} from "../media-types.js";
import type { Descriptor } from "./descriptor.js";
import { parsePrettyJws } from "./jws.js";

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

/**
 * Manifest bytes as stored, with their media type and digest: digests are over these exact bytes, except
 * for a signed Docker schema 1 manifest, whose digest is over its JWS payload (the bytes without the
 * signatures), as registries name it.
 */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
  /** For a manifest ocify converted (from Docker schema 1): the manifest as the source holds it. */
  convertedFrom?: RawManifest;
}

/** The most manifest or config JSON we read (distribution caps manifests at 4 MiB). */
export const maxManifestBytes = 4 << 20;

/** Build a RawManifest from bytes, taking the media type from the JSON when the transport gave none. */
export function rawManifest(bytes: Buffer, mediaType?: string): RawManifest {
  let type = mediaType && mediaType !== "application/json" && mediaType !== "text/plain" ? mediaType.split(";")[0]!.trim() : undefined;
  if (!type) type = guessMediaType(bytes);
  return { bytes, mediaType: type, digest: digestOf(manifestPayload(bytes, type)) };
}

/** The bytes a manifest's digest is over: the JWS payload of a signed schema 1 manifest, else all of them. */
export function manifestPayload(bytes: Buffer, mediaType: string): Buffer {
  if (!isSchema1MediaType(mediaType)) return bytes;
  return parsePrettyJws(bytes, "schema 1 manifest")?.payload ?? bytes;
}

/**
 * Check a manifest against the digest it was asked for (or a registry's Docker-Content-Digest), over the
 * bytes the digest covers (distribution api.md, "Digest Header"); throws DigestMismatchError.
 */
export function verifyManifestDigest(raw: RawManifest, expected: string, what: string): void {
  const { algorithm } = parseDigest(expected, what);
  const actual =
    algorithm === "sha256"
      ? raw.digest
      : `${algorithm}:${createHash(algorithm).update(manifestPayload(raw.bytes, raw.mediaType)).digest("hex")}`;
  if (actual !== expected) throw new DigestMismatchError(what, expected, actual);
}

/** Serialize a manifest, index or config ocify makes: canonical JSON (every object's keys sorted, no whitespace). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), "utf8");
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
  if (json.schemaVersion === 1) return "signatures" in json ? MediaType.dockerSchema1Signed : MediaType.dockerSchema1;
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
    throw new InvalidImageError(`${what} has media type ${raw.mediaType}, not an image manifest`, { hint: notAnImageHint(raw.mediaType) });
  }
  const json = parseJson(raw.bytes, what);
  if (json.schemaVersion !== 2) throw new InvalidImageError(`${what} has schemaVersion ${String(json.schemaVersion)}, expected 2`);
  if (!Array.isArray(json.layers)) throw new InvalidImageError(`${what} has no layers array`);
  checkDescriptor(json.config, `${what} config`);
  for (const [i, layer] of json.layers.entries()) checkDescriptor(layer, `${what} layer ${i}`);
  return json as unknown as ImageManifest;
}

function notAnImageHint(mediaType: string): string {
  if (mediaType === MediaType.ociArtifactManifest) {
    return "an OCI artifact manifest (a type withdrawn from the image spec) describes an artifact, not a container image";
  }
  if (isIndexMediaType(mediaType)) return "it is an index; choose one of its images";
  return "it is not a container image";
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
