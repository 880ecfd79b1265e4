/**
 * Blobs and layers as the model hands them to a writer: a descriptor, a way to read the bytes, and what
 * can spare sending them (a registry repository that holds them, an upload already under way).
 */
import { Readable } from "node:stream";
import type { Digest } from "../digest.js";
import { digestOf } from "../digest.js";
import { InvalidImageError } from "../errors.js";
import type { Descriptor } from "./descriptor.js";
import type { ImageSource, RegistryLocation } from "./source.js";

/** An upload of a blob that is already under way to one destination (a layer streamed while it was built). */
export interface PendingUpload {
  /** The destination object the upload goes to (compared by identity). */
  readonly destination: object;
  /** Settles when the destination holds the blob; rejects when the upload failed. */
  readonly done: Promise<void>;
}

/** A blob of an image (a layer or a config): what it is, how to read it, and what spares sending it. */
export interface ImageBlob {
  readonly descriptor: Descriptor;
  /** What it is, for progress and messages: `layer`, `config`, `base layer`. */
  readonly kind: string;
  /** The bytes, verified against the descriptor while they stream. */
  open(signal?: AbortSignal): Promise<Readable>;
  /** Registry repositories that hold it: a destination on the same registry mounts it from one of them. */
  readonly locations?: readonly RegistryLocation[] | undefined;
  /** Made by this run (a config after a layer changed): no registry has it, so none is asked. */
  readonly fresh?: boolean | undefined;
  /** An upload of it already under way: a copy to that destination waits for it instead of sending it again. */
  readonly pending?: PendingUpload | undefined;
  /**
   * Make the blob readable again after open() gave bytes that failed their check (a damaged cache entry):
   * rebuild the layer, fetch the base blob again. A writer then sends it once more.
   */
  readonly repair?: (() => Promise<void>) | undefined;
}

/** A layer: a blob whose uncompressed tar has a digest of its own, the diffID. */
export interface Layer extends ImageBlob {
  /** The sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry). */
  diffID(): Promise<Digest>;
}

/** A blob of a source, read from it when asked. */
export function sourceBlob(source: ImageSource, descriptor: Descriptor, kind: string): ImageBlob {
  return {
    descriptor,
    kind,
    open: (signal) => source.getBlob(descriptor, signal),
    locations: source.location ? [source.location] : undefined,
    repair: source.forgetBlob ? () => (source.forgetBlob as NonNullable<typeof source.forgetBlob>)(descriptor) : undefined,
  };
}

/** A layer of a source; its diffID comes from the image's config, read only when asked. */
export function sourceLayer(source: ImageSource, descriptor: Descriptor, diffID: () => Promise<Digest>, kind = "layer"): Layer {
  return { ...sourceBlob(source, descriptor, kind), diffID };
}

/** A small blob held in memory (a config, a manifest stored as a blob). */
export function bytesBlob(bytes: Buffer, mediaType: string, kind: string, fresh = false): ImageBlob {
  const descriptor: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
  return { descriptor, kind, fresh, open: async () => Readable.from([bytes]) };
}

/** The same blob under another descriptor (a media type converted); the bytes and hints stay. */
export function withDescriptor<T extends ImageBlob>(blob: T, descriptor: Descriptor): T {
  if (descriptor.digest !== blob.descriptor.digest || descriptor.size !== blob.descriptor.size) {
    throw new InvalidImageError(`a blob's descriptor can change its media type, not its digest or size (${blob.descriptor.digest})`);
  }
  const copy = Object.create(Object.getPrototypeOf(blob) as object, Object.getOwnPropertyDescriptors(blob)) as T;
  Object.defineProperty(copy, "descriptor", { value: descriptor, enumerable: true });
  return copy;
}
