/**
 * Transports: where images are read from and written to. References use skopeo's syntax:
 * `docker://REF` (or a bare reference), `oci:DIR[:tag]`, `oci-archive:FILE[:tag]`,
 * `docker-archive:FILE[:name:tag | :@index]`.
 */
import { readdirSync, type Stats, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import type { Digest } from "../digest.js";
import { InvalidReferenceError, UsageError } from "../errors.js";
import { isWriterScratch } from "../fs-atomic.js";
import type { Descriptor } from "../image/descriptor.js";
import type { RawManifest } from "../image/manifest.js";
import type { ManifestFormat } from "../media-types.js";
import type { ProgressSink } from "../progress.js";
import { parseReference, parseReferenceWithDefaultTag, type Reference } from "../reference.js";
import type { CredentialProvider } from "../registry/credentials.js";

/** A parsed transport reference. */
export type TransportReference =
  | { transport: "docker"; reference: Reference }
  | { transport: "docker-archive"; path: string; name?: Reference; index?: number }
  | { transport: "oci"; path: string; tag?: string }
  | { transport: "oci-archive"; path: string; tag?: string };

/** Where a registry blob lives, so that a destination on the same registry can mount it instead of copying. */
export interface RegistryLocation {
  registry: string;
  repository: string;
}

/** Options every transport accepts. */
export interface TransportOptions {
  /** Registries (HOST[:PORT]) reached over plain HTTP or with unverified TLS. */
  insecureRegistries?: readonly string[];
  /** Directory of the content-addressed blob cache. */
  cacheDir?: string;
  /** Parallel blob transfers. */
  jobs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** Registry uploads: blobs larger than this go in chunks of it (default: upload.ts's defaultChunkSize). */
  uploadChunkSize?: number;
  /** Reading from registries: which operations the credentials will be asked for (push adds push scope). */
  userAgent?: string;
  /** Download non-distributable layers from their URLs for destinations that must hold their content (docker-archive). */
  fetchForeignLayers?: boolean;
  /** Where registry credentials come from, in order; default: containers' auth.json files, then docker's config.json. */
  credentials?: readonly CredentialProvider[] | undefined;
  /** Pull mirrors (`--registry-mirror`): `MIRROR` for Docker Hub, `REGISTRY=MIRROR` for another registry. */
  registryMirrors?: readonly string[] | undefined;
}

/** A readable image store: one image, an index, or an archive of several. */
export interface ImageSource {
  /** The reference as the user wrote it, for messages. */
  readonly description: string;
  /** Set for registry sources: lets a destination on the same registry mount blobs. */
  readonly location?: RegistryLocation;
  /**
   * The top-level manifest (an image manifest or an index) when `digest` is undefined,
   * otherwise the manifest with that digest (a child of the index). Bytes exactly as stored.
   */
  getManifest(digest?: Digest): Promise<RawManifest>;
  /** A blob's bytes, verified against the descriptor's digest and size while they stream. */
  getBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<Readable>;
  close(): Promise<void>;
}

/** How a destination may read a blob again (a registry resuming an upload after a failure or a kill). */
export interface PutBlobOptions {
  /** The blob's bytes from `offset` on. */
  reopen?: ((offset: number) => Promise<Readable>) | undefined;
}

/** A writable image store. Blobs first, manifests after, then commit(); abort() leaves nothing behind. */
export interface ImageDestination {
  readonly description: string;
  /** Set for registry destinations (for cross-repository mounts). */
  readonly location?: RegistryLocation;
  /** Whether an index (several platforms) can be stored; docker-archive cannot. */
  readonly acceptsIndex: boolean;
  /**
   * The manifest family the destination needs, when it cannot hold the other: an OCI layout lists only OCI
   * manifests for most readers (skopeo skips Docker ones), so Docker images are converted on the way in.
   */
  readonly preferredManifestFormat?: ManifestFormat;
  /**
   * Whether non-distributable (foreign) layers must be stored here as blobs: a docker-archive must (docker
   * load reads every layer); registries and layouts keep their descriptors, with the URLs, and no blob.
   */
  readonly requiresForeignBlobs?: boolean;
  /** Whether the blob is already there (it is then not sent). */
  hasBlob(descriptor: Descriptor): Promise<boolean>;
  /** Try to mount the blob from another repository of the same registry; true when it is now present. */
  mountBlob?(descriptor: Descriptor, from: RegistryLocation): Promise<boolean>;
  /** Store a blob; the stream yields exactly descriptor.size bytes, which the destination verifies. */
  putBlob(descriptor: Descriptor, content: Readable, options?: PutBlobOptions): Promise<void>;
  /**
   * Store a blob whose digest is known only once its last byte is produced (a layer being built and
   * compressed while it uploads). `final` resolves to the descriptor after the stream ends. Registries
   * implement it with POST + streamed PATCH + PUT ?digest=; other destinations leave it undefined.
   */
  putBlobStreaming?(mediaType: string, content: Readable, final: Promise<Descriptor>, resumeKey?: string): Promise<void>;
  /**
   * Open an upload session now for a blob about to come (a registry's POST), so that the putBlob or
   * putBlobStreaming that follows starts sending at once. One left unused is cancelled by commit/abort.
   */
  openUpload?(): void;
  /**
   * Store a manifest. `top` marks the manifest the destination's tag(s) point at; child manifests of an
   * index are stored with top=false before their index.
   */
  putManifest(manifest: RawManifest, options: { top: boolean }): Promise<void>;
  /** Make everything written visible (rename temp files, write index.json / manifest.json last). */
  commit(): Promise<void>;
  /** Remove whatever was written; safe to call after a failure at any point. */
  abort(): Promise<void>;
}

/** Transport names accepted as prefixes. */
export const transportNames = ["docker", "docker-archive", "oci", "oci-archive"] as const;

function splitPath(body: string, input: string, transport: string): [string, string | undefined] {
  const colon = body.indexOf(":");
  const path = colon < 0 ? body : body.slice(0, colon);
  const rest = colon < 0 ? undefined : body.slice(colon + 1);
  if (path.length === 0) throw new InvalidReferenceError(input, `${transport}: needs a path`, { hint: `write ${transport}:PATH` });
  return [path, rest === "" ? undefined : rest];
}

// skopeo transports we do not implement: named so that users get a clear error, not a parse of a host name.
const otherTransports = new Set(["containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball"]);

/** Parse a transport reference in skopeo's syntax; a bare image reference means `docker://`. */
export function parseTransportReference(input: string): TransportReference {
  if (input.startsWith("docker://")) {
    return { transport: "docker", reference: parseReferenceWithDefaultTag(input.slice("docker://".length)) };
  }
  const colon = input.indexOf(":");
  const prefix = colon < 0 ? "" : input.slice(0, colon);
  const body = input.slice(colon + 1);
  switch (prefix) {
    case "docker-archive": {
      const [path, rest] = splitPath(body, input, prefix);
      if (rest === undefined) return { transport: "docker-archive", path };
      if (rest.startsWith("@")) {
        const index = Number(rest.slice(1));
        if (!Number.isInteger(index) || index < 0 || rest.length === 1) {
          throw new InvalidReferenceError(input, `"${rest}" is not an image index`, { hint: "write @0, @1, …" });
        }
        return { transport: "docker-archive", path, index };
      }
      const name = parseReference(rest);
      if (name.digest !== undefined) {
        throw new InvalidReferenceError(input, "a docker-archive name cannot contain a digest", { hint: "use NAME:TAG" });
      }
      name.tag ??= "latest";
      return { transport: "docker-archive", path, name };
    }
    case "oci":
    case "oci-archive": {
      const [path, tag] = splitPath(body, input, prefix);
      if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) {
        throw new InvalidReferenceError(input, `"${tag}" is not a valid tag`, { hint: "use letters, digits, '_', '.', '-'" });
      }
      return tag === undefined ? { transport: prefix, path } : { transport: prefix, path, tag };
    }
    case "docker":
      throw new InvalidReferenceError(input, "docker transport references start with docker://");
    default:
      if (otherTransports.has(prefix)) {
        throw new InvalidReferenceError(input, `transport "${prefix}" is not supported`, {
          hint: "use docker://, docker-archive:, oci: or oci-archive:",
        });
      }
      return { transport: "docker", reference: parseReferenceWithDefaultTag(input) };
  }
}

/** The transport reference as a string, for messages. */
export function formatTransportReference(ref: TransportReference): string {
  switch (ref.transport) {
    case "docker":
      return `docker://${ref.reference.registry}/${ref.reference.repository}${ref.reference.tag ? `:${ref.reference.tag}` : ""}${ref.reference.digest ? `@${ref.reference.digest}` : ""}`;
    case "docker-archive":
      return `docker-archive:${ref.path}${ref.name ? `:${ref.name.registry}/${ref.name.repository}:${ref.name.tag}` : ref.index !== undefined ? `:@${ref.index}` : ""}`;
    default:
      return `${ref.transport}:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
  }
}

/** What is at `path`: undefined when nothing is, or a file stands where a directory on the way should be. */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw error;
  }
}

/** An archive is written to a temp file beside its path, then renamed over it: a file, or nothing yet, in a directory. */
function checkArchivePath(path: string, what: string, transport: string): void {
  const found = statOf(path);
  if (found?.isDirectory()) {
    const layout = transport === "oci-archive" ? ", or write an OCI layout directory with oci:" : "";
    throw new UsageError(`${what}: ${path} is a directory, not an archive file`, {
      hint: `name a file, e.g. ${join(path, "image.tar")}${layout}`,
    });
  }
  if (found && !found.isFile()) {
    throw new UsageError(`${what}: ${path} is not a regular file`, { hint: "name a new file or a regular one to replace" });
  }
  const parent = dirname(resolve(path));
  const directory = statOf(parent);
  if (!directory) throw new UsageError(`${what}: directory ${parent} does not exist`, { hint: "create it first" });
  if (!directory.isDirectory()) throw new UsageError(`${what}: ${parent} is not a directory`);
}

/** An OCI layout is a directory: new, empty, or a layout already (its index is merged). */
function checkLayoutPath(path: string, what: string): void {
  const found = statOf(path);
  if (found && !found.isDirectory()) {
    throw new UsageError(`${what}: ${path} is not a directory`, { hint: "an OCI layout is a directory; for a tar file use oci-archive:" });
  }
  if (found) {
    const entries = readdirSync(path).filter((name) => !isWriterScratch(name));
    if (entries.length > 0 && !entries.includes("oci-layout")) {
      throw new UsageError(`${what}: ${path} is not empty and not an OCI layout`, {
        hint: "choose a new or empty directory, or an existing layout",
      });
    }
    return;
  }
  // Created with its missing parents: the nearest that exists must be a directory.
  let ancestor = dirname(resolve(path));
  while (!statOf(ancestor) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  if (!statOf(ancestor)?.isDirectory()) throw new UsageError(`${what}: ${ancestor} is not a directory`);
}

/**
 * Check that a destination can be written where it points, before any work: an archive's path is a file
 * (or nothing yet) in a directory that exists, a layout's is a directory that is new, empty or a layout.
 * A wrong one is a usage error (exit 2); what only writing tells (permissions, space) fails when written.
 */
export function checkDestination(ref: TransportReference): void {
  if (ref.transport === "docker") return;
  const what = `${ref.transport}:${ref.path}`;
  if (ref.transport === "oci") {
    checkLayoutPath(ref.path, what);
    return;
  }
  if (ref.transport === "docker-archive" && ref.index !== undefined) {
    throw new UsageError(`${what}:@${ref.index}: @index selects an image to read, it cannot name one to write`, {
      hint: "write docker-archive:FILE or docker-archive:FILE:NAME:TAG",
    });
  }
  checkArchivePath(ref.path, what, ref.transport);
}

/**
 * Open a transport reference for reading. Transport modules load lazily, so startup stays fast. Docker
 * schema 1 manifests are read as the schema 2 images they convert to.
 */
export async function openSource(ref: TransportReference, options: TransportOptions = {}): Promise<ImageSource> {
  const [source, { convertingSchema1 }] = await Promise.all([openPlainSource(ref, options), import("./schema1-source.js")]);
  return convertingSchema1(source, options);
}

async function openPlainSource(ref: TransportReference, options: TransportOptions): Promise<ImageSource> {
  switch (ref.transport) {
    case "docker":
      return (await import("./registry.js")).openRegistrySource(ref.reference, options);
    case "docker-archive":
      return (await import("./docker-archive.js")).openDockerArchiveSource(ref, options);
    case "oci":
      return (await import("./oci-layout.js")).openOciLayoutSource(ref, options);
    case "oci-archive":
      return (await import("./oci-archive.js")).openOciArchiveSource(ref, options);
  }
}

/** Open a transport reference for writing (the CLI checks it first with checkDestination). */
export async function openDestination(ref: TransportReference, options: TransportOptions = {}): Promise<ImageDestination> {
  switch (ref.transport) {
    case "docker":
      return (await import("./registry.js")).openRegistryDestination(ref.reference, options);
    case "docker-archive":
      return (await import("./docker-archive.js")).openDockerArchiveDestination(ref, options);
    case "oci":
      return (await import("./oci-layout.js")).openOciLayoutDestination(ref, options);
    case "oci-archive":
      return (await import("./oci-archive.js")).openOciArchiveDestination(ref, options);
  }
}
