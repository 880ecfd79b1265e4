/**
 * Attaching files (an SBOM, a signature, a report) to an image as an OCI 1.1 referrer: an artifact of the
 * image model (image/artifact.ts) with the image's manifest as its `subject`, written by copyImage like any
 * image. A registry with the referrers API lists it there; on others the referrers tag scheme's index
 * `sha256-<hex>` is updated through the transport, keeping the referrers it listed (distribution-spec,
 * "Pushing Manifests with Subject"). In an OCI layout or archive it becomes an untagged index.json entry
 * with its artifactType, beside what the layout held.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { pipeline } from "node:stream/promises";
import { copyImage } from "./copy.js";
import { createDigester, type Digest, parseDigest } from "./digest.js";
import { InputError, UsageError } from "./errors.js";
import { artifact } from "./image/artifact.js";
import type { Descriptor } from "./image/descriptor.js";
import type { Image } from "./image/image.js";
import type { ImageBlob } from "./image/layer.js";
import { encodeJson, type IndexManifest, manifestDescriptor, parseImageIndex, rawManifest } from "./image/manifest.js";
import * as mutate from "./image/mutate.js";
import { MediaType } from "./media-types.js";
import type { Reference } from "./reference.js";
import { ManifestUnknownError } from "./registry/errors.js";
import { listReferrers } from "./registry/verbs.js";
import { openOciArchiveDestination } from "./transport/oci-archive.js";
import { openDestination, openSource, parseTransportReference } from "./transport/transport.js";
import type { ImageDestination, TransportOptions, TransportReference } from "./transport/types.js";

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

/** A file as a blob of the artifact, hashed once; streamed again from the file when written. */
async function fileBlob(file: ArtifactFile, artifactType: string): Promise<ImageBlob> {
  const info = await stat(file.path).catch(() => undefined);
  if (!info?.isFile()) {
    throw new InputError(`${file.path}: ${info ? "is not a file" : "does not exist"}`, { hint: "give the files to attach" });
  }
  const digester = createDigester();
  await pipeline(createReadStream(file.path), digester);
  digester.resume();
  const descriptor: Descriptor = {
    mediaType: file.mediaType ?? artifactType,
    digest: digester.digest,
    size: digester.size,
    annotations: { [titleAnnotation]: basename(file.path) },
  };
  return { descriptor, kind: "artifact", open: async () => createReadStream(file.path) };
}

/** The referrers tag scheme's tag for a digest: `<alg>-<hex>` (distribution-spec). */
export function referrersTag(digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `${algorithm}-${encoded}`.slice(0, 128);
}

/** The entry of a referrers index for an artifact: its descriptor, artifactType and annotations (distribution-spec). */
export async function referrerEntry(referrer: Image): Promise<Descriptor> {
  const [raw, manifest] = await Promise.all([referrer.rawManifest(), referrer.manifest()]);
  const entry: Descriptor = { ...manifestDescriptor(raw) };
  if (manifest.artifactType !== undefined) entry.artifactType = manifest.artifactType;
  if (manifest.annotations !== undefined) entry.annotations = manifest.annotations;
  return entry;
}

/** A referrers index with `entry` listed once (an entry with its digest is replaced), the others kept. */
export function addReferrer(existing: IndexManifest | undefined, entry: Descriptor): Buffer {
  const base: IndexManifest = existing ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const manifests = [...base.manifests.filter((d) => d.digest !== entry.digest), entry];
  return encodeJson({ ...base, mediaType: MediaType.ociIndex, manifests });
}

/** The subject's manifest descriptor, as the source serves it. */
async function subjectOf(ref: TransportReference, options: TransportOptions): Promise<Descriptor> {
  const source = await openSource(ref, options);
  try {
    return manifestDescriptor(await source.getManifest());
  } finally {
    await source.close();
  }
}

/**
 * The referrers tag index at `at` (undefined when there is none yet), from the registry itself: a pull
 * mirror's copy may be older, and the index is about to be written back with what it lists.
 */
async function readTagIndex(at: Reference, options: TransportOptions): Promise<IndexManifest | undefined> {
  const source = await openSource({ transport: "docker", reference: at }, { ...options, registryMirrors: [] });
  try {
    const raw = await source.getManifest();
    return parseImageIndex(rawManifest(raw.bytes, MediaType.ociIndex), `referrers index ${source.description}`);
  } catch (error) {
    if (error instanceof ManifestUnknownError) return undefined;
    throw error;
  } finally {
    await source.close();
  }
}

/** Write an index's bytes under a tag through the transport (a destination's top manifest, then commit). */
async function putIndex(destination: ImageDestination, bytes: Buffer): Promise<void> {
  try {
    await destination.putManifest(rawManifest(bytes, MediaType.ociIndex), { top: true });
    await destination.commit();
  } catch (error) {
    await destination.abort().catch(() => {});
    throw error;
  }
}

/** Push the referrer by digest; without a referrers API, list it in the subject's tag scheme index. */
async function pushReferrer(reference: Reference, referrer: Image, subject: Descriptor, options: TransportOptions) {
  const { tag: _tag, digest: _digest, ...repository } = reference;
  await copyImage(referrer, await openDestination({ transport: "docker", reference: repository }, options), options);
  if (await listReferrers({ ...repository, digest: subject.digest }, options)) return "referrers-api" as const;
  // The tag scheme: read, add, put back (a concurrent writer may race; the spec accepts it).
  const at = { ...repository, tag: referrersTag(subject.digest) };
  const index = addReferrer(await readTagIndex(at, options), await referrerEntry(referrer));
  await putIndex(await openDestination({ transport: "docker", reference: at }, options), index);
  return "referrers-tag" as const;
}

/** Write the referrer where its subject is; says how it can be found from there. */
async function writeReferrer(
  ref: TransportReference,
  referrer: Image,
  subject: Descriptor,
  options: TransportOptions,
): Promise<AttachResult["indexedBy"]> {
  switch (ref.transport) {
    case "docker":
      return pushReferrer(ref.reference, referrer, subject, options);
    case "oci":
      await copyImage(referrer, await openDestination({ transport: "oci", path: ref.path }, options), options);
      return "index.json";
    case "oci-archive":
      await copyImage(
        referrer,
        await openOciArchiveDestination({ transport: "oci-archive", path: ref.path }, options, { keep: true }),
        options,
      );
      return "index.json";
    default:
      throw new UsageError(`${ref.transport}: a docker-archive cannot hold referrers`, {
        hint: "attach to an oci:, oci-archive: or registry image",
      });
  }
}

function checkArtifactType(artifactType: string): void {
  if (!/^[a-z0-9][\w!#$&^.+-]*\/[\w!#$&^.+-]+$/i.test(artifactType)) {
    throw new UsageError(`artifact type ${artifactType}: expected a media type such as application/spdx+json`, {
      hint: "give the artifactType option a TYPE/SUBTYPE media type",
    });
  }
}

/** Attach files to an image as an OCI 1.1 referrer; see the module comment for where it goes. */
export async function attachArtifact(options: AttachOptions): Promise<AttachResult> {
  if (!options.files.length) throw new UsageError("nothing to attach", { hint: "give the files option at least one file" });
  checkArtifactType(options.artifactType);
  const ref = parseTransportReference(options.subject);
  if (ref.transport === "docker-archive") {
    throw new UsageError(`${options.subject}: a docker-archive cannot hold referrers`, {
      hint: "attach to an oci:, oci-archive: or registry image",
    });
  }
  const blobs = await Promise.all(options.files.map((file) => fileBlob(file, options.artifactType)));
  const subject = await subjectOf(ref, options);
  let referrer = mutate.subject(artifact(options.artifactType, blobs, `an artifact for ${options.subject}`), subject);
  if (options.annotations && Object.keys(options.annotations).length) referrer = mutate.annotations(referrer, options.annotations);
  const indexedBy = await writeReferrer(ref, referrer, subject, options);
  const raw = await referrer.rawManifest();
  return { digest: raw.digest, manifest: raw.bytes, subject, indexedBy };
}
