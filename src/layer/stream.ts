/**
 * Layers that arrive as one stream rather than from files on disk: a tar stream (an upload, a
 * generator, another tool's output), or entries given by a program (files held in memory, or streams of
 * known size). One pass: the tar is hashed for the diffID, compressed, hashed again for the digest and
 * written to the blob cache, so memory does not grow with the layer. The layer engine's block cache and
 * rebuild shortcuts are for files on disk (build.ts); a stream is compressed whole each time.
 */
import { type Duplex, pipeline as pipelineCallback, Readable } from "node:stream";
import { BlobCache, defaultCacheDir } from "../cache.js";
import { createCompressor } from "../codec.js";
import { Digester } from "../digest.js";
import { UsageError } from "../errors.js";
import type { Layer } from "../image/layer.js";
import { type Compression, layerMediaType, type ManifestFormat } from "../media-types.js";
import { type EntryType, encodeHeader, endOfArchiveSize, paddingFor } from "./tar.js";

/** How a streamed layer is compressed and stored. */
export interface StreamLayerOptions {
  /** The blob cache directory the layer is written to (default: the user's cache). */
  cacheDir?: string;
  /** Default gzip. */
  compression?: Compression;
  /** Default: gzip 1, zstd 3. */
  level?: number;
  /** The manifest family whose layer media type the layer gets (default OCI). */
  format?: ManifestFormat;
  signal?: AbortSignal;
}

/** Build a layer from a tar stream (or any iterable of its bytes), compressed into the blob cache. */
export async function layerFromTar(
  tar: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: StreamLayerOptions = {},
): Promise<Layer> {
  options.signal?.throwIfAborted();
  const compression = options.compression ?? "gzip";
  const cache = new BlobCache(options.cacheDir ?? defaultCacheDir());
  const diffID = new Digester();
  const compressor = await createCompressor(compression, options.level);
  const input = tar instanceof Readable ? tar : Readable.from(tar, { objectMode: false });
  // A failure of any stage destroys the last one, and so fails the store (nothing is left in the cache).
  const stages: (Readable | Duplex)[] = [input, diffID, ...(compressor ? [compressor] : [])];
  const compressed = (pipelineCallback as unknown as (...args: unknown[]) => Readable)(...stages, () => {});
  const abort = (): void => {
    compressed.destroy(options.signal?.reason as Error);
  };
  options.signal?.addEventListener("abort", abort, { once: true });
  const { digest, size } = await cache.storeNew(compressed).finally(() => options.signal?.removeEventListener("abort", abort));
  const descriptor = { mediaType: layerMediaType(options.format ?? "oci", compression), digest, size };
  const tarDigest = diffID.digest;
  return {
    descriptor,
    kind: "layer",
    diffID: async () => tarDigest,
    open: async () => cache.open(descriptor, `layer ${digest}`),
  };
}

/** One entry of a layer given by a program. */
export interface FileEntry {
  /** The path inside the image, e.g. `app/config.json` or `/app/config.json`. */
  path: string;
  /** Default "file" (or "directory" when the path ends with "/"). */
  type?: "file" | "directory" | "symlink";
  /** A file's content; a stream needs `size`. */
  content?: string | Uint8Array | Readable | undefined;
  /** The content's size in bytes (required for a stream). */
  size?: number;
  /** The symlink's target. */
  linkname?: string;
  /** Permission bits; default 0o644 for files, 0o755 for directories and symlinks. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; default 0. */
  mtime?: number;
}

const types: Record<NonNullable<FileEntry["type"]>, EntryType> = { file: "file", directory: "directory", symlink: "symlink" };

/** The tar bytes of one entry: header, content and padding. */
async function* entryBytes(entry: FileEntry): AsyncGenerator<Uint8Array> {
  const name = entry.path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (name === "" || name.split("/").some((part) => part === "..")) {
    throw new UsageError(`layer entry "${entry.path}" is not a path inside the image`, { hint: "give a path such as app/file.txt" });
  }
  const type = entry.type ?? (entry.path.endsWith("/") ? "directory" : "file");
  const content = typeof entry.content === "string" ? Buffer.from(entry.content) : entry.content;
  const size = type !== "file" ? 0 : content instanceof Readable ? entry.size : (content?.length ?? 0);
  if (size === undefined) throw new UsageError(`layer entry "${entry.path}": a stream's size must be given`, { hint: "set size" });
  yield encodeHeader({
    name: Buffer.from(name),
    type: types[type],
    mode: entry.mode ?? (type === "file" ? 0o644 : 0o755),
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
    size,
    mtime: entry.mtime ?? 0,
    linkname: entry.linkname === undefined ? undefined : Buffer.from(entry.linkname),
  });
  if (type !== "file") return;
  let written = 0;
  for await (const chunk of content instanceof Readable ? content : content ? [content] : []) {
    written += (chunk as Uint8Array).length;
    yield chunk as Uint8Array;
  }
  if (written !== size) throw new UsageError(`layer entry "${entry.path}": ${written} bytes, not the ${size} its size says`);
  yield Buffer.alloc(paddingFor(size));
}

async function* tarOf(entries: Iterable<FileEntry> | AsyncIterable<FileEntry>): AsyncGenerator<Uint8Array> {
  for await (const entry of entries) yield* entryBytes(entry);
  yield Buffer.alloc(endOfArchiveSize);
}

/**
 * Build a layer from entries given by a program, in the order given (sort them for a reproducible
 * digest): files held in memory or streamed, directories and symlinks. Nothing is read from disk.
 */
export async function layerFromFiles(
  entries: Iterable<FileEntry> | AsyncIterable<FileEntry>,
  options: StreamLayerOptions = {},
): Promise<Layer> {
  return layerFromTar(Readable.from(tarOf(entries), { objectMode: false }), options);
}
