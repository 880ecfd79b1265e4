/**
 * Writing images: the one path by which `copy`, `build` and `import` put an image anywhere. Blobs first
 * (an upload already under way awaited, blobs present skipped, mounted when the registry can, streamed
 * otherwise), child manifests, the top manifest, then every destination is committed, only once all of
 * them have everything. A failure aborts every destination: nothing partial is left.
 */
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { isDamagedContent } from "./cache.js";
import { type Digest, shortDigest } from "./digest.js";
import { addContext, UsageError } from "./errors.js";
import { checkForeignLayer, type ForeignLayerOptions, openForeignLayer } from "./foreign-layers.js";
import type { Platform } from "./image/descriptor.js";
import { type Image, type ImageIndex, readImage, selectImage } from "./image/image.js";
import type { ImageBlob } from "./image/layer.js";
import type { RawManifest } from "./image/manifest.js";
import { format, formatIndex } from "./image/mutate.js";
import type { ImageSource, RegistryLocation } from "./image/source.js";
import { isNondistributableMediaType } from "./media-types.js";
import { noProgress, type ProgressSink } from "./progress.js";
import { retryReason } from "./registry/retry.js";
import { isResumableUploadFailure, skipBytes } from "./registry/upload.js";
import type { ImageDestination } from "./transport/types.js";

/** Options for moving blobs and images. */
export interface CopyOptions extends ForeignLayerOptions {
  /** Blobs transferred at once, to a registry, an archive or a layout (an archive keeps them in order); default 4. */
  jobs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** What this run found or put at its destinations so far (a copy makes its own). */
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

/** What `copyImage` takes from a source that holds an index. */
export interface CopyImageOptions extends CopyOptions {
  /** Copy one platform of an index (default: the host's, unless `all`). */
  platform?: Platform;
  /** Copy every image of an index and the index itself (the manifest digest is kept). */
  all?: boolean;
}

/** The result of writing an image: the top manifest written to one destination. */
export interface WriteResult {
  destination: string;
  digest: Digest;
  mediaType: string;
  /** The top manifest's size in bytes. */
  size: number;
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

/** Send one blob, the cheapest way the destination allows, and record what became of it. */
async function pushBlob(destination: ImageDestination, blob: ImageBlob, progress: ProgressSink, known: KnownBlobs): Promise<void> {
  const { descriptor } = blob;
  const id = descriptor.digest;
  const event = { kind: blob.kind, id, total: descriptor.size, target: destination.description };
  const report = (phase: "skipped" | "sent" | "mounted" | "done"): void => {
    known.add(destination, id, phase === "skipped" ? "skipped" : "sent");
    progress({ ...event, phase, bytes: descriptor.size });
  };
  const before = known.known(destination, id);
  if (before) return report(before); // another tag of a repository the run met the blob in
  // Uploaded while it was built: pushed by this run. An upload the network broke goes on below, from the
  // blob's bytes, where the registry's session stands (registry/upload.ts keeps it).
  if (blob.pending?.destination === destination) {
    const failure = await blob.pending.done.then(
      () => undefined,
      (error: unknown) => error ?? new Error("upload failed"),
    );
    if (failure === undefined) return report("done");
    if (!isResumableUploadFailure(failure)) throw failure;
    const reason = `the upload during the build broke (${retryReason(failure)}); sending the rest`;
    progress({ ...event, phase: "retry", bytes: 0, reason });
  }
  if (!blob.fresh && (await destination.hasBlob(descriptor))) return report("skipped");
  const here = destination.location;
  const from = [...(blob.locations ?? []), ...known.sentTo(id)].find(
    (at) => here && at.registry === here.registry && at.repository !== here.repository,
  );
  if (from && destination.mountBlob && (await destination.mountBlob(descriptor, from))) return report("mounted");
  progress({ ...event, phase: "start", bytes: 0 });
  await sendBlob(
    destination,
    blob,
    (bytes) => progress({ ...event, phase: "progress", bytes }),
    (reason) => progress({ ...event, phase: "retry", bytes: 0, reason }),
  );
  report("done");
}

/**
 * Stream a blob to a destination. When what the blob opened fails its own check (a damaged cache entry),
 * the blob is repaired (a layer rebuilt, a base blob fetched again) and sent once more: a damaged cache
 * never fails a build. A registry that loses the connection asks for the bytes from where it stands.
 */
async function sendBlob(
  destination: ImageDestination,
  blob: ImageBlob,
  onBytes: (bytes: number) => void,
  onRetry: (reason: string) => void,
): Promise<void> {
  for (let repaired = false; ; repaired = true) {
    const source = await blob.open();
    const reopen = async (offset: number) => counted(skipBytes(await blob.open(), offset), (bytes) => onBytes(offset + bytes));
    try {
      await destination.putBlob(blob.descriptor, counted(source, onBytes), { reopen });
      return;
    } catch (error) {
      const damaged = source.errored ?? error;
      source.destroy(); // a destination that failed before reading it all leaves no download running
      if (repaired || !blob.repair || !isDamagedContent(damaged)) throw error;
      onRetry(`rebuilding its damaged cache entry: ${(damaged as Error).message}`);
      await blob.repair();
    }
  }
}

/**
 * The blobs a destination receives, each once: a non-distributable layer is left out where its descriptor
 * is enough, and read from its URLs where the destination needs its content (refused, before anything is
 * written, unless the caller allowed it).
 */
function blobsFor(destination: ImageDestination, blobs: readonly ImageBlob[], options: CopyOptions): ImageBlob[] {
  const unique = [...new Map(blobs.map((b) => [b.descriptor.digest, b])).values()];
  return unique.flatMap((blob) => {
    if (!isNondistributableMediaType(blob.descriptor.mediaType)) return [blob];
    if (!destination.requiresForeignBlobs) return [];
    checkForeignLayer(blob.descriptor, destination.description, options);
    return [{ descriptor: blob.descriptor, kind: blob.kind, open: () => openForeignLayer(blob.descriptor, options) }];
  });
}

/**
 * Send blobs to a destination: skip those present, mount when possible, stream the rest, up to `jobs` at
 * a time to a registry or a destination that takes blobs concurrently (a pull from a distant registry
 * waits on each connection's round trips and bandwidth, not on the disk). Duplicates are sent once, and so
 * are blobs `options.known` says the run met there.
 */
export async function pushBlobs(destination: ImageDestination, blobs: readonly ImageBlob[], options: CopyOptions = {}): Promise<void> {
  const progress = options.progress ?? noProgress;
  const known = options.known ?? new KnownBlobs();
  const unique = blobsFor(destination, blobs, options).filter((b) => !known.reported(destination, b.descriptor.digest));
  const concurrent = destination.location !== undefined || destination.expectBlobs !== undefined;
  const parallel = concurrent ? (options.jobs ?? 4) : 1;
  await destination.expectBlobs?.(unique.map((b) => b.descriptor));
  await forEachLimit(unique, parallel, async (blob) => {
    try {
      await pushBlob(destination, blob, progress, known);
    } catch (error) {
      throw addContext(`writing ${blob.kind} ${shortDigest(blob.descriptor.digest)} to ${destination.description}`, error);
    }
  });
}

/** Write an image's blobs and manifest (as the destination can hold it); returns the manifest written. */
async function writeImage(image: Image, destination: ImageDestination, options: CopyOptions, top: boolean): Promise<RawManifest> {
  const preferred = destination.preferredManifestFormat;
  const stored = preferred ? format(image, preferred) : image;
  const [layers, config] = await Promise.all([stored.layers(), stored.configBlob()]);
  await pushBlobs(destination, [...layers, config], options);
  const raw = await stored.rawManifest();
  await destination.putManifest(raw, { top });
  return raw;
}

/** Write an index: every child (images and nested indexes) by digest, then the index itself. */
async function writeIndex(index: ImageIndex, destination: ImageDestination, options: CopyOptions, top: boolean): Promise<RawManifest> {
  const preferred = destination.preferredManifestFormat;
  const stored = preferred ? formatIndex(index, preferred) : index;
  for (const child of await stored.children()) {
    const item = await child.read();
    if (item.kind === "index") await writeIndex(item, destination, options, false);
    else await writeImage(item, destination, options, false);
  }
  const raw = await stored.rawManifest();
  await destination.putManifest(raw, { top });
  return raw;
}

/** What to copy out of a source: its top image or index, or the image of one platform. */
async function chosenFrom(source: ImageSource, options: CopyImageOptions): Promise<Image | ImageIndex> {
  const top = await readImage(source);
  if (top.kind === "image" || options.all) return top;
  return selectImage(top, options.platform);
}

function isSource(value: Image | ImageIndex | ImageSource): value is ImageSource {
  return typeof (value as ImageSource).getManifest === "function";
}

/**
 * Write an image or index to one destination, or to several: each gets every blob and manifest before
 * any is committed. Manifest and config bytes are kept, so digests are kept, unless a destination needs
 * the other manifest family (an OCI layout gets OCI manifests). Given a source, its top image is
 * copied, or for an index the image of `platform` (default the host's), or everything with `all`.
 * On failure every destination is aborted and nothing partial is left.
 */
export async function copyImage(
  image: Image | ImageIndex | ImageSource,
  destination: ImageDestination,
  options?: CopyImageOptions,
): Promise<WriteResult>;
export async function copyImage(
  image: Image | ImageIndex | ImageSource,
  destinations: readonly ImageDestination[],
  options?: CopyImageOptions,
): Promise<WriteResult[]>;
export async function copyImage(
  image: Image | ImageIndex | ImageSource,
  to: ImageDestination | readonly ImageDestination[],
  options: CopyImageOptions = {},
): Promise<WriteResult | WriteResult[]> {
  const destinations: readonly ImageDestination[] = Array.isArray(to) ? to : [to as ImageDestination];
  const moving: CopyImageOptions = { ...options, known: options.known ?? new KnownBlobs() };
  try {
    const chosen = isSource(image) ? await chosenFrom(image, options) : image;
    const refusing = chosen.kind === "index" ? destinations.find((d) => !d.acceptsIndex) : undefined;
    if (refusing) {
      throw new UsageError(`${refusing.description} holds one image, not an index`, {
        hint: "choose one platform, or write to a registry, oci: or oci-archive:",
      });
    }
    const written: RawManifest[] = [];
    for (const destination of destinations) {
      written.push(
        chosen.kind === "index" ? await writeIndex(chosen, destination, moving, true) : await writeImage(chosen, destination, moving, true),
      );
    }
    for (const destination of destinations) await destination.commit();
    const results = destinations.map((d, i) => {
      const raw = written[i] as RawManifest;
      return { destination: d.description, digest: raw.digest, mediaType: raw.mediaType, size: raw.bytes.length };
    });
    return Array.isArray(to) ? results : (results[0] as WriteResult);
  } catch (error) {
    await Promise.all(destinations.map((d) => d.abort().catch(() => {})));
    throw error;
  }
}
