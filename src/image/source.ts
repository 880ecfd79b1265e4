/**
 * Where the model reads from: a store of manifests and blobs. The transports (docker://, oci:,
 * oci-archive:, docker-archive:) implement it; a program can implement it over anything else.
 */
import type { Readable } from "node:stream";
import type { Digest } from "../digest.js";
import type { Descriptor } from "./descriptor.js";
import type { RawManifest } from "./manifest.js";

/** A repository of a registry that holds a blob: a destination on the same registry can mount it from there. */
export interface RegistryLocation {
  registry: string;
  repository: string;
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
  /** Drop a kept copy of the blob that was found damaged while it was read, so that getBlob fetches it again. */
  forgetBlob?(descriptor: Descriptor): Promise<void>;
  close(): Promise<void>;
}
