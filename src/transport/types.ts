/**
 * What every transport implements and accepts: the parsed reference, the options, and the destination
 * interface (sources implement the model's ImageSource).
 */
import type { Readable } from "node:stream";
import type { Descriptor } from "../image/descriptor.js";
import type { RawManifest } from "../image/manifest.js";
import type { RegistryLocation } from "../image/source.js";
import type { ManifestFormat } from "../media-types.js";
import type { ProgressSink } from "../progress.js";
import type { Reference } from "../reference.js";
import type { CredentialProvider } from "../registry/credentials.js";

export type { ImageSource, RegistryLocation } from "../image/source.js";

/** A parsed transport reference. */
export type TransportReference =
  | { transport: "docker"; reference: Reference }
  | { transport: "docker-archive"; path: string; name?: Reference; index?: number }
  | { transport: "oci"; path: string; tag?: string }
  | { transport: "oci-archive"; path: string; tag?: string };

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
  /** Pull mirrors: `MIRROR` for Docker Hub, `REGISTRY=MIRROR` for another registry. */
  registryMirrors?: readonly string[] | undefined;
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
  /**
   * Blobs about to be written, in the order they are to be stored. A destination that defines it takes
   * them concurrently: an archive sets their places now, so the order they arrive in changes nothing in it.
   */
  expectBlobs?(descriptors: readonly Descriptor[]): Promise<void>;
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
