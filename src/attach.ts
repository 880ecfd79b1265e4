/**
 * `ocify attach`: an artifact (an SBOM, a signature, a report) attached to an image as an OCI 1.1
 * referrer: an image manifest with `artifactType`, the empty config and a `subject` naming the image
 * (image-spec manifest.md "Guidelines for Artifact Usage"). A registry with the referrers API indexes it
 * itself (it answers the PUT with `OCI-Subject`); on others the referrers tag scheme's index
 * `sha256-<hex>` is updated, keeping the referrers already listed (distribution-spec "Referrers Tag
 * Schema"). In an OCI layout or archive the artifact manifest is added to index.json, untagged.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDigester, type Digest, parseDigest } from "./digest.js";
import { InputError, InvalidImageError, UsageError } from "./errors.js";
import type { Descriptor } from "./image/descriptor.js";
import { encodeJson, type IndexManifest as ImageIndex, manifestDescriptor, parseImageIndex, type RawManifest, rawManifest } from "./image/manifest.js";
import { MediaType } from "./media-types.js";
import {
  type ImageSource,
  openSource,
  parseTransportReference,
  type TransportOptions,
  type TransportReference,
} from "./transport/transport.js";

/** The empty config of an artifact manifest (image-spec manifest.md, "Guidance for an Empty Descriptor"). */
export const emptyConfig = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" as Digest,
  size: 2,
  data: "e30=",
} as const;

/** The annotation naming a file in an artifact (image-spec annotations.md). */
export const titleAnnotation = "org.opencontainers.image.title";

/** A file to attach, and the media type of its blob (default: the artifact type). */
export interface ArtifactFile {
  path: string;
  mediaType?: string;
}

/** What `attachArtifact` needs. */
export interface AttachOptions extends TransportOptions {
  /** The image to attach to: a registry reference, `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`. */
  subject: string;
  artifactType: string;
  files: readonly ArtifactFile[];
  /** Annotations of the artifact manifest (none by default, so the same files give the same digest). */
  annotations?: Record<string, string>;
}

/** What was attached. */
export interface AttachResult {
  /** The artifact manifest's digest. */
  digest: Digest;
  manifest: Buffer;
  subject: Descriptor;
  /** How the referrer can be found: the registry's referrers API, the tag scheme's index, or index.json. */
  indexedBy: "referrers-api" | "referrers-tag" | "index.json";
}

/** A file of the artifact, hashed: its descriptor and how to read it again. */
export interface ArtifactBlob {
  descriptor: Descriptor;
  open(): Readable;
}

async function hashFile(file: ArtifactFile, artifactType: string): Promise<ArtifactBlob> {
  const info = await stat(file.path).catch(() => undefined);
  if (!info?.isFile())
    throw new InputError(`${file.path}: ${info ? "is not a file" : "does not exist"}`, { hint: "give the files to attach" });
  const digester = createDigester();
  await pipeline(createReadStream(file.path), digester);
  digester.resume();
  const descriptor: Descriptor = {
    mediaType: file.mediaType ?? artifactType,
    digest: digester.digest,
    size: digester.size,
    annotations: { [titleAnnotation]: basename(file.path) },
  };
  return { descriptor, open: () => createReadStream(file.path) };
}

/** The artifact manifest for `blobs` with `subject` (image-spec manifest.md, artifactType + empty config). */
export function artifactManifest(
  artifactType: string,
  blobs: readonly Descriptor[],
  subject: Descriptor,
  annotations?: Record<string, string>,
): RawManifest {
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config: emptyConfig,
    layers: blobs,
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  if (annotations && Object.keys(annotations).length) manifest.annotations = sortedRecord(annotations);
  return rawManifest(encodeJson(manifest), MediaType.ociManifest);
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The referrers index entry for an artifact manifest (distribution-spec: artifactType and annotations copied). */
export function referrerDescriptor(manifest: RawManifest, artifactType: string): Descriptor {
  const descriptor: Descriptor = { ...manifestDescriptor(manifest), artifactType };
  const annotations = (JSON.parse(manifest.bytes.toString("utf8")) as { annotations?: Record<string, string> }).annotations;
  if (annotations) descriptor.annotations = annotations;
  return descriptor;
}

/** An index with `entry` added once (an entry with its digest is replaced), every other entry kept. */
export function addReferrer(existing: ImageIndex | undefined, entry: Descriptor): RawManifest {
  const base: ImageIndex = existing ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const manifests = [...base.manifests.filter((d) => d.digest !== entry.digest), entry];
  return rawManifest(encodeJson({ ...base, mediaType: MediaType.ociIndex, manifests }), MediaType.ociIndex);
}

/** The referrers tag scheme's tag for a digest: `<alg>-<hex>` (distribution-spec). */
export function referrersTag(digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `${algorithm}-${encoded}`.slice(0, 128);
}

async function subjectDescriptor(source: ImageSource): Promise<Descriptor> {
  const top = await source.getManifest();
  return manifestDescriptor(top);
}

/** Attach files to an image as an OCI 1.1 referrer; see the module comment for where it goes. */
export async function attachArtifact(options: AttachOptions): Promise<AttachResult> {
  if (!options.files.length) throw new UsageError("attach needs at least one FILE");
  if (!/^[a-z0-9][\w!#$&^.+-]*\/[\w!#$&^.+-]+$/i.test(options.artifactType)) {
    throw new UsageError(`--artifact-type ${options.artifactType}: expected a media type such as application/spdx+json`);
  }
  const ref = parseTransportReference(options.subject);
  if (ref.transport === "docker-archive") {
    throw new UsageError(`${options.subject}: a docker-archive cannot hold referrers`, {
      hint: "attach to an oci:, oci-archive: or registry image",
    });
  }
  const blobs = await Promise.all(options.files.map((file) => hashFile(file, options.artifactType)));
  const source = await openSource(ref, options);
  let subject: Descriptor;
  try {
    subject = await subjectDescriptor(source);
  } finally {
    await source.close();
  }
  const manifest = artifactManifest(
    options.artifactType,
    blobs.map((b) => b.descriptor),
    subject,
    options.annotations,
  );
  const entry = referrerDescriptor(manifest, options.artifactType);
  const indexedBy = await writeReferrer(ref, { manifest, entry, blobs, subject }, options);
  return { digest: manifest.digest, manifest: manifest.bytes, subject, indexedBy };
}

/** An artifact ready to be written: its manifest, index entry, blobs and subject. */
export interface Referrer {
  manifest: RawManifest;
  entry: Descriptor;
  blobs: readonly ArtifactBlob[];
  subject: Descriptor;
}

/** The config blob's bytes. */
export const emptyConfigBytes = Buffer.from("{}");

async function writeReferrer(ref: TransportReference, referrer: Referrer, options: TransportOptions): Promise<AttachResult["indexedBy"]> {
  switch (ref.transport) {
    case "docker":
      return (await import("./attach-registry.js")).pushReferrer(ref.reference, referrer, options);
    case "oci":
    case "oci-archive":
      await (await import("./attach-layout.js")).addReferrerToLayout(ref, referrer);
      return "index.json";
    default:
      throw new InvalidImageError(`${ref.transport}: cannot hold referrers`);
  }
}

/** The referrers tag index's bytes parsed, or undefined (for callers that read it from a store). */
export function parseReferrersIndex(bytes: Buffer | undefined, what: string): ImageIndex | undefined {
  return bytes === undefined ? undefined : parseImageIndex(rawManifest(bytes, MediaType.ociIndex), what);
}

/** A stream of bytes held in memory. */
export function bytesStream(bytes: Buffer): Readable {
  return Readable.from([bytes]);
}
