/**
 * Writing images: the one path by which `copy`, `build` and `import` put an image anywhere. Blobs first
 * (an upload already under way awaited, blobs present skipped, mounted when the registry can, streamed
 * otherwise), child manifests, the top manifest, then every destination is committed, only once all of
 * them have everything. A failure aborts every destination: nothing partial is left.
 */
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Digest, shortDigest } from "./digest.js";
import { addContext, UsageError } from "./errors.js";
import type { Platform } from "./image/descriptor.js";
import { type Image, type ImageIndex, readImage, selectImage } from "./image/image.js";
import type { ImageBlob } from "./image/layer.js";
import type { RawManifest } from "./image/manifest.js";
import { format, formatIndex } from "./image/mutate.js";
import type { ImageSource } from "./image/source.js";
import { noProgress, type ProgressSink } from "./progress.js";
import type { ImageDestination } from "./transport/transport.js";

/** Options for moving blobs and images. */
export interface CopyOptions {
  /** Parallel blob transfers to a registry (archives write one blob at a time); default 4. */
  jobs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
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

/** Send one blob, the cheapest way the destination allows. */
async function pushBlob(destination: ImageDestination, blob: ImageBlob, progress: ProgressSink): Promise<void> {
  const { descriptor } = blob;
  const event = { kind: blob.kind, id: descriptor.digest, total: descriptor.size, target: destination.description };
  if (blob.pending?.destination === destination) {
    await blob.pending.done;
    progress({ ...event, phase: "skipped", bytes: descriptor.size });
    return;
  }
  if (!blob.fresh && (await destination.hasBlob(descriptor))) {
    progress({ ...event, phase: "skipped", bytes: descriptor.size });
    return;
  }
  const here = destination.location;
  const from = (blob.locations ?? []).find((at) => here && at.registry === here.registry && at.repository !== here.repository);
  if (from && destination.mountBlob && (await destination.mountBlob(descriptor, from))) {
    progress({ ...event, phase: "mounted", bytes: descriptor.size });
    return;
  }
  progress({ ...event, phase: "start", bytes: 0 });
  const content = counted(await blob.open(), (bytes) => progress({ ...event, phase: "progress", bytes }));
  await destination.putBlob(descriptor, content);
  progress({ ...event, phase: "done", bytes: descriptor.size });
}

/** Send blobs to a destination (each digest once), up to `jobs` at a time to a registry. */
export async function pushBlobs(destination: ImageDestination, blobs: readonly ImageBlob[], options: CopyOptions = {}): Promise<void> {
  const progress = options.progress ?? noProgress;
  const unique = [...new Map(blobs.map((b) => [b.descriptor.digest, b])).values()];
  const parallel = destination.location ? (options.jobs ?? 4) : 1;
  await forEachLimit(unique, parallel, async (blob) => {
    try {
      await pushBlob(destination, blob, progress);
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
        chosen.kind === "index"
          ? await writeIndex(chosen, destination, options, true)
          : await writeImage(chosen, destination, options, true),
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
