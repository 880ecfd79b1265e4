/**
 * Moving images: blobs first (skipped when present, mounted when the registry can, streamed otherwise),
 * manifests after, then commit. Used by `ocify copy` and by `ocify build` for each destination.
 */
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { isDamagedContent } from "./cache.js";
import { type Digest, shortDigest } from "./digest.js";
import { addContext, InvalidImageError, UsageError } from "./errors.js";
import { checkForeignLayer, type ForeignLayerOptions, openForeignLayer } from "./foreign-layers.js";
import { type Descriptor, hostPlatform, type Platform } from "./image/descriptor.js";
import {
  convertImageManifest,
  encodeJson,
  type ImageIndex,
  parseImageIndex,
  parseImageManifest,
  type RawManifest,
  rawManifest,
} from "./image/manifest.js";
import { maxIndexDepth, selectImage } from "./image/select.js";
import { familyMediaTypes, isIndexMediaType, isNondistributableMediaType } from "./media-types.js";
import { noProgress, type ProgressSink } from "./progress.js";
import { isRetryableError, retryReason } from "./registry/retry.js";
import { skipBytes } from "./registry/upload.js";
import type { ImageDestination, ImageSource, RegistryLocation } from "./transport/transport.js";

/** A blob to send to a destination, and how to read it. */
export interface BlobPlan {
  descriptor: Descriptor;
  /** What the blob is, for progress and messages: `layer`, `config`. */
  kind: string;
  open(): Promise<Readable>;
  /** Where it already lives in a registry, for a cross-repository mount. */
  location?: RegistryLocation | undefined;
  /** Other repositories that may hold it (pushed there before): mount candidates too. */
  alsoAt?: readonly RegistryLocation[] | undefined;
  /** Made by this run (a config after a layer changed): sent without asking whether the destination has it. */
  fresh?: boolean | undefined;
  /**
   * Already on its way to one destination, streamed there while it was built: pushing it there waits for
   * that upload to finish (and fails with it) instead of asking the registry or sending it again.
   */
  streamed?: { destination: ImageDestination; done: Promise<void> } | undefined;
  /**
   * Make the blob readable again after open() gave bytes that failed their check (a damaged cache
   * entry): rebuild the layer, fetch the base blob again. The blob is then sent once more.
   */
  repair?: (() => Promise<void>) | undefined;
}

/** Options for moving blobs and images. */
export interface CopyOptions extends ForeignLayerOptions {
  /** Parallel blob transfers to a registry (archives write one blob at a time). */
  jobs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** What this run found or put at its destinations so far (a build or copy makes its own). */
  known?: KnownBlobs;
}

/** What a run knows a destination's store holds: found there before the run, or put there by it. */
type Known = "skipped" | "sent";

/**
 * The blobs one run (a build or a copy) found or put at its destinations. A blob the run met before at a
 * destination (for an earlier image of an index) is not asked for or reported again there; at another
 * tag of the same repository it is not asked for either, and is reported as it was first found: present
 * before the run ("skipped"), or put there by it ("sent"). A blob the run put in one repository can be
 * mounted into another of the same registry.
 */
export class KnownBlobs {
  // Registry destinations share a repository's blobs across tags; any other destination has its own.
  readonly #byPlace = new Map<string | ImageDestination, Map<string, Known>>();
  readonly #reported = new WeakMap<ImageDestination, Set<string>>();
  readonly #sentTo = new Map<string, RegistryLocation[]>();

  static #place(destination: ImageDestination): string | ImageDestination {
    const at = destination.location;
    return at ? `${at.registry}/${at.repository}` : destination;
  }

  /** Whether the destination was told about the blob already (for an earlier image of the run). */
  reported(destination: ImageDestination, digest: string): boolean {
    return this.#reported.get(destination)?.has(digest) ?? false;
  }

  /** How the run knows the destination's store holds the blob, if it does. */
  known(destination: ImageDestination, digest: string): Known | undefined {
    return this.#byPlace.get(KnownBlobs.#place(destination))?.get(digest);
  }

  /** The repositories the run put the blob in. */
  sentTo(digest: string): readonly RegistryLocation[] {
    return this.#sentTo.get(digest) ?? [];
  }

  /** Record that the blob is at the destination, found there or put there, and was reported for it. */
  add(destination: ImageDestination, digest: string, how: Known): void {
    const place = KnownBlobs.#place(destination);
    const blobs = this.#byPlace.get(place) ?? new Map<string, Known>();
    this.#byPlace.set(place, blobs);
    if (!blobs.has(digest)) {
      blobs.set(digest, how);
      if (how === "sent" && destination.location) this.#sentTo.set(digest, [...this.sentTo(digest), destination.location]);
    }
    const reported = this.#reported.get(destination) ?? new Set<string>();
    this.#reported.set(destination, reported.add(digest));
  }
}

/** Run `task` over `items` with at most `limit` in flight; the first failure stops new work and is thrown. */
export async function forEachLimit<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (rejected) throw rejected.reason;
}

/** Pass a stream through a byte counter; an error of the source reaches the reader through the counter. */
function counted(content: Readable, onBytes: (bytes: number) => void): Readable {
  let bytes = 0;
  const counter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      onBytes(bytes);
      callback(null, chunk);
    },
  });
  pipeline(content, counter).catch(() => {});
  return counter;
}

/**
 * Stream a blob to a destination. When what the plan opened fails its own check (a damaged cache
 * entry), the plan repairs it and the blob is sent once more: a damaged cache never fails a build.
 */
async function sendBlob(
  destination: ImageDestination,
  blob: BlobPlan,
  onBytes: (bytes: number) => void,
  onRetry: (reason: string) => void,
): Promise<void> {
  for (let repaired = false; ; repaired = true) {
    const source = await blob.open();
    // After a failure, a registry upload goes on from where the registry stands: the bytes from there.
    const reopen = async (offset: number) => counted(skipBytes(await blob.open(), offset), (bytes) => onBytes(offset + bytes));
    try {
      await destination.putBlob(blob.descriptor, counted(source, onBytes), { reopen });
      return;
    } catch (error) {
      const damaged = source.errored ?? error;
      if (repaired || !blob.repair || !isDamagedContent(damaged)) throw error;
      onRetry(`rebuilding its damaged cache entry: ${(damaged as Error).message}`);
      await blob.repair();
    }
  }
}

/**
 * The blobs a destination receives: a non-distributable layer is left out where its descriptor is enough,
 * and read from its URLs where the destination needs its content (refused, before anything is written,
 * unless the user allowed it).
 */
function blobsFor(destination: ImageDestination, blobs: readonly BlobPlan[], options: CopyOptions): BlobPlan[] {
  const unique = [...new Map(blobs.map((b) => [b.descriptor.digest, b])).values()];
  return unique.flatMap((blob) => {
    if (!isNondistributableMediaType(blob.descriptor.mediaType)) return [blob];
    if (!destination.requiresForeignBlobs) return [];
    checkForeignLayer(blob.descriptor, destination.description, options);
    return [{ descriptor: blob.descriptor, kind: blob.kind, open: () => openForeignLayer(blob.descriptor, options) }];
  });
}

/**
 * Send blobs to a destination: skip those present, mount when possible, stream the rest. Duplicates are
 * sent once, and so are blobs `options.known` says the run met there before.
 */
export async function pushBlobs(destination: ImageDestination, blobs: readonly BlobPlan[], options: CopyOptions = {}): Promise<void> {
  const progress = options.progress ?? noProgress;
  const known = options.known ?? new KnownBlobs();
  const unique = blobsFor(destination, blobs, options).filter((b) => !known.reported(destination, b.descriptor.digest));
  const parallel = destination.location ? (options.jobs ?? 4) : 1;
  await forEachLimit(unique, parallel, async (blob) => {
    await pushBlob(destination, blob, progress, known);
  });
}

async function pushBlob(destination: ImageDestination, blob: BlobPlan, progress: ProgressSink, known: KnownBlobs): Promise<void> {
  const { descriptor } = blob;
  const id = descriptor.digest;
  const event = { kind: blob.kind, id, total: descriptor.size, target: destination.description };
  const report = (phase: "skipped" | "sent" | "mounted" | "done"): void => {
    known.add(destination, id, phase === "skipped" ? "skipped" : "sent");
    progress({ ...event, phase, bytes: descriptor.size });
  };
  try {
    const before = known.known(destination, id);
    if (before) {
      report(before); // another tag of a repository the run met the blob in
      return;
    }
    // Uploaded while it was built: pushed by this run. An upload the network broke goes on below, from
    // the cache, where the registry's session stands (registry/upload.ts keeps it).
    if (blob.streamed?.destination === destination) {
      const failure = await blob.streamed.done.then(
        () => undefined,
        (error: unknown) => error ?? new Error("upload failed"),
      );
      if (failure === undefined) {
        report("done");
        return;
      }
      if (!isRetryableError(failure)) throw failure;
      progress({
        ...event,
        phase: "retry",
        bytes: 0,
        reason: `the upload during the build broke (${retryReason(failure)}); sending the rest`,
      });
    }
    if (!blob.fresh && (await destination.hasBlob(descriptor))) {
      report("skipped");
      return;
    }
    const here = destination.location;
    const from = [blob.location, ...(blob.alsoAt ?? []), ...known.sentTo(id)].find(
      (at) => at && here && at.registry === here.registry && at.repository !== here.repository,
    );
    if (from && destination.mountBlob) {
      if (await destination.mountBlob(descriptor, from)) {
        report("mounted");
        return;
      }
    }
    progress({ ...event, phase: "start", bytes: 0 });
    await sendBlob(
      destination,
      blob,
      (bytes) => progress({ ...event, phase: "progress", bytes }),
      (reason) => progress({ ...event, phase: "retry", bytes: 0, reason }),
    );
    report("done");
  } catch (error) {
    throw addContext(`writing ${blob.kind} ${shortDigest(id)} to ${destination.description}`, error);
  }
}

/** The blobs of an image manifest as read from a source. */
export function sourceBlobs(source: ImageSource, manifest: RawManifest): BlobPlan[] {
  const parsed = parseImageManifest(manifest, `manifest ${shortDigest(manifest.digest)} of ${source.description}`);
  const plan = (descriptor: Descriptor, kind: string): BlobPlan => ({
    descriptor,
    kind,
    open: () => source.getBlob(descriptor, undefined),
    location: source.location,
  });
  return [...parsed.layers.map((d) => plan(d, "layer")), plan(parsed.config, "config")];
}

/** The manifest as the destination can hold it: a Docker manifest becomes OCI for an OCI layout (only its digest changes). */
export function forDestination(raw: RawManifest, destination: ImageDestination): RawManifest {
  const format = destination.preferredManifestFormat;
  return format && !isIndexMediaType(raw.mediaType) ? convertImageManifest(raw, format, `manifest of ${destination.description}`) : raw;
}

/** The index to store after its children were stored as `children` (unchanged bytes when nothing was converted). */
function convertIndexFor(top: RawManifest, index: ImageIndex, children: Descriptor[], destination: ImageDestination): RawManifest {
  const format = destination.preferredManifestFormat;
  if (!format || children.every((c, i) => c.digest === index.manifests[i]?.digest)) return top;
  const types = familyMediaTypes(format);
  const converted: ImageIndex = { schemaVersion: 2, mediaType: types.index, manifests: children };
  if (index.annotations && format === "oci") converted.annotations = index.annotations;
  return rawManifest(encodeJson(converted), types.index);
}

/**
 * Store every manifest an index lists (nested indexes too, to a bounded depth), children before their
 * index; returns the index to store, converted only when a child had to be.
 */
async function copyIndex(
  source: ImageSource,
  destination: ImageDestination,
  top: RawManifest,
  index: ImageIndex,
  options: CopyImageOptions,
  depth: number,
): Promise<RawManifest> {
  const children: Descriptor[] = [];
  for (const child of index.manifests) {
    const raw = await source.getManifest(child.digest);
    let stored: RawManifest;
    if (isIndexMediaType(raw.mediaType)) {
      if (depth >= maxIndexDepth) {
        throw new InvalidImageError(
          `${source.description}: indexes nest more than ${maxIndexDepth} deep (at ${shortDigest(child.digest)})`,
        );
      }
      const nested = parseImageIndex(raw, `index ${shortDigest(child.digest)} of ${source.description}`);
      stored = await copyIndex(source, destination, raw, nested, options, depth + 1);
    } else {
      await pushBlobs(destination, sourceBlobs(source, raw), options);
      stored = forDestination(raw, destination);
    }
    await destination.putManifest(stored, { top: false });
    children.push({ ...child, mediaType: stored.mediaType, digest: stored.digest, size: stored.bytes.length });
  }
  return convertIndexFor(top, index, children, destination);
}

/** What `copyImage` should take from an index. */
export interface CopyImageOptions extends CopyOptions {
  /** Copy one platform of an index (default: the host's, unless `all`). */
  platform?: Platform;
  /** Copy every image of an index and the index itself (the manifest digest is kept). */
  all?: boolean;
}

/** The result of writing an image: the digest of the top manifest written. */
export interface WriteResult {
  destination: string;
  digest: Digest;
  mediaType: string;
}

/**
 * Copy an image from a source to a destination, keeping manifest and config bytes (so digests are kept),
 * and commit the destination. On failure the destination is aborted (nothing partial is left).
 */
export async function copyImage(source: ImageSource, destination: ImageDestination, options: CopyImageOptions = {}): Promise<WriteResult> {
  const moving: CopyImageOptions = { ...options, known: options.known ?? new KnownBlobs() };
  try {
    const top = await source.getManifest();
    let written: RawManifest;
    if (isIndexMediaType(top.mediaType)) {
      const index = parseImageIndex(top, `index of ${source.description}`);
      if (options.all) {
        if (!destination.acceptsIndex) {
          throw new UsageError(`${destination.description} holds a single image, not an index`, {
            hint: "use --platform to pick one image",
          });
        }
        written = await copyIndex(source, destination, top, index, moving, 0);
      } else {
        const read = (digest: Digest) => source.getManifest(digest);
        const { manifest: image } = await selectImage(top, options.platform ?? hostPlatform(), read, source.description);
        await pushBlobs(destination, sourceBlobs(source, image), moving);
        written = forDestination(image, destination);
      }
    } else {
      await pushBlobs(destination, sourceBlobs(source, top), moving);
      written = forDestination(top, destination);
    }
    await destination.putManifest(written, { top: true });
    await destination.commit();
    return { destination: destination.description, digest: written.digest, mediaType: written.mediaType };
  } catch (error) {
    await destination.abort().catch(() => {});
    throw error;
  }
}
