/**
 * Tar archives as image stores (docker-archive, oci-archive): an index of entry offsets for random access
 * without extracting, and a writer that streams entries of known size into reserved regions of a temp file
 * (its headers encoded by tar/header.ts, the one tar header writer).
 */
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { type FileHandle, mkdtemp, open, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, posix } from "node:path";
import { pipeline as pipelineCallback, Readable, type Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDecompressor, detectCompression } from "../codec.js";
import { boundedExpansion } from "../decompression.js";
import { createVerifier, parseDigest } from "../digest.js";
import { fromSystemError, InputError, InvalidImageError, OcifyError, SizeMismatchError, withSystemPath } from "../errors.js";
import { ownerTag, removeStaleOwned, removeStaleTemps, tempPathFor, trackTemp, untrackTemp, writevFully } from "../fs-atomic.js";
import type { Descriptor } from "../image/descriptor.js";
import { type ArchiveHeader, encodeArchiveHeader, endOfArchiveSize, paddingFor, recordSize } from "../tar/header.js";

const block = recordSize;
const maxMetaBytes = 1 << 20;

/** What a tar entry is. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** One entry of a tar archive: its name and where its data lives in the file. */
export interface TarEntry {
  name: string;
  type: TarEntryType;
  size: number;
  /** Byte offset of the entry's data in the archive file. */
  offset: number;
  linkname?: string;
}

/** Normalize a tar member name to a relative path without `./` or a trailing slash. */
export function normalizeEntryName(name: string): string {
  let n = posix.normalize(name.replace(/\\/g, "/"));
  while (n.startsWith("./")) n = n.slice(2);
  n = n.replace(/^\/+/, "").replace(/\/+$/, "");
  return n === "." ? "" : n;
}

function cString(buf: Buffer, start: number, length: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString("utf8", start, end < 0 || end > start + length ? start + length : end);
}

function parseNumber(buf: Buffer, start: number, length: number): number {
  if ((buf[start]! & 0x80) !== 0) {
    // base-256 (GNU/star extension), big-endian, first byte's high bit is the marker
    let value = buf[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + buf[i]!;
    return value;
  }
  const text = cString(buf, start, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  const stored = parseNumber(header, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < block; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : header[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const length = Number.parseInt(data.toString("ascii", pos, space), 10);
    if (!Number.isSafeInteger(length) || length <= 0 || pos + length > data.length) break;
    const record = data.toString("utf8", space + 1, pos + length - 1);
    const eq = record.indexOf("=");
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return records;
}

function entryType(flag: string): TarEntryType {
  switch (flag) {
    case "0":
    case "\0":
    case "":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "5":
      return "directory";
    default:
      return "other";
  }
}

// Decompressed copies of compressed archives not yet closed: removed when the process exits.
const tempDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** An index of a tar file's entries, for reading members at random without extracting the archive. */
export class TarIndex {
  readonly entries = new Map<string, TarEntry>();

  private constructor(
    readonly path: string,
    readonly description: string,
    /** A temp directory holding a decompressed copy of the archive, removed by close(). */
    readonly tempDir?: string,
  ) {}

  /**
   * Read every header of the tar file at `path` (skipping the data); throws InputError if it is not a tar.
   * A gzip- or zstd-compressed archive (`docker save | gzip`) is first decompressed to a temp file,
   * since a compressed stream allows no random access; close() removes it.
   */
  static async open(path: string, description: string): Promise<TarIndex> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new InputError(`${description}: cannot open ${path}: ${code ?? String(error)}`, {
        hint: code === "ENOENT" ? "check the path" : undefined,
        cause: error,
      });
    }
    let index: TarIndex | undefined;
    try {
      const magic = Buffer.alloc(4);
      await handle.read(magic, 0, 4, 0);
      const compression = detectCompression(magic);
      if (compression !== "none") {
        await handle.close();
        index = await TarIndex.#decompressed(path, description, compression);
        handle = await open(index.path, "r");
      } else {
        index = new TarIndex(path, description);
      }
      const { size: fileSize } = await handle.stat();
      await index.#scan(handle, fileSize);
    } catch (error) {
      await index?.close();
      throw error;
    } finally {
      await handle.close().catch(() => {});
    }
    return index;
  }

  static async #decompressed(path: string, description: string, compression: "gzip" | "zstd"): Promise<TarIndex> {
    await removeStaleOwned(tmpdir(), "ocify-archive-");
    const dir = await mkdtemp(join(tmpdir(), `ocify-archive-${ownerTag()}-`));
    const index = new TarIndex(join(dir, "archive.tar"), description, dir);
    tempDirs.add(dir);
    trackTemp(dir);
    try {
      const decompressor = await createDecompressor(compression, path);
      const bound = boundedExpansion(`${description}: ${path}`);
      await pipeline(
        createReadStream(path, { highWaterMark: 1 << 20 }),
        bound.input,
        decompressor!,
        bound.output,
        createWriteStream(index.path),
      );
    } catch (error) {
      await index.close();
      if (error instanceof OcifyError) throw error;
      throw new InvalidImageError(`${description}: cannot decompress ${path} (${compression}): ${(error as Error).message}`, {
        hint: "the archive is damaged",
        cause: error,
      });
    }
    return index;
  }

  /** Remove the decompressed copy, if one was made. */
  async close(): Promise<void> {
    if (!this.tempDir) return;
    tempDirs.delete(this.tempDir);
    untrackTemp(this.tempDir);
    await rm(this.tempDir, { recursive: true, force: true });
  }

  async #scan(handle: FileHandle, fileSize: number): Promise<void> {
    const header = Buffer.alloc(block);
    let position = 0;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    let first = true;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, block, position);
      if (bytesRead === 0 && !first) return; // no end-of-archive blocks: accepted, as GNU tar does
      if (bytesRead < block || header.every((b) => b === 0)) {
        if (first) this.#notTar(bytesRead);
        if (bytesRead < block && bytesRead > 0) throw this.#truncated();
        return;
      }
      if (!checksumOk(header)) {
        if (first) this.#notTar(bytesRead);
        throw new InvalidImageError(`${this.description}: tar header at byte ${position} is corrupt`, {
          hint: "the archive is damaged; create it again",
        });
      }
      first = false;
      const flag = String.fromCharCode(header[156]!);
      let size = parseNumber(header, 124, 12);
      if (pax.has("size")) size = Number(pax.get("size"));
      const dataOffset = position + block;
      if (!Number.isSafeInteger(size) || size < 0 || dataOffset + size > fileSize) throw this.#truncated();
      position = dataOffset + Math.ceil(size / block) * block;

      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        if (size > maxMetaBytes) {
          throw new InvalidImageError(`${this.description}: tar extended header of ${size} bytes is too large`, {
            hint: "the archive is not an image archive",
          });
        }
        const data = Buffer.alloc(size);
        await handle.read(data, 0, size, dataOffset);
        if (flag === "x") pax = parsePax(data);
        else if (flag === "L") longName = cString(data, 0, size);
        else if (flag === "K") longLink = cString(data, 0, size);
        // "g" (global) records carry nothing we use.
        continue;
      }

      const magic = header.toString("latin1", 257, 263);
      let name = cString(header, 0, 100);
      if (magic === "ustar\0") {
        const prefix = cString(header, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      name = pax.get("path") ?? longName ?? name;
      const linkname = pax.get("linkpath") ?? longLink ?? cString(header, 157, 100);
      const type = entryType(flag);
      const entry: TarEntry = { name: normalizeEntryName(name), type, size: type === "file" ? size : 0, offset: dataOffset };
      if (type === "symlink" || type === "hardlink") entry.linkname = linkname;
      // Two files of one name: which one a reader takes is up to the reader, so an archive that has them is refused.
      if (type === "file" && this.entries.get(entry.name)?.type === "file") {
        throw new InvalidImageError(`${this.description}: the archive has two entries named "${entry.name}"`, {
          hint: "the archive is damaged or hostile; write it again",
        });
      }
      this.entries.set(entry.name, entry);
      pax = new Map();
      longName = undefined;
      longLink = undefined;
    }
  }

  #notTar(bytesRead: number): never {
    throw new InputError(`${this.description}: ${this.tempDir ? "the decompressed file" : this.path} is not a tar archive`, {
      hint: bytesRead === 0 ? "the file is empty" : "give a file written by docker save, skopeo or ocify",
    });
  }

  #truncated(): InvalidImageError {
    return new InvalidImageError(`${this.description}: ${this.path} is truncated`, { hint: "the archive is incomplete; create it again" });
  }

  /** The regular-file entry at `name`, following symlinks and hard links inside the archive. */
  find(name: string): TarEntry | undefined {
    let current = normalizeEntryName(name);
    for (let hops = 0; hops < 16; hops++) {
      const entry = this.entries.get(current);
      if (!entry) return undefined;
      if (entry.type === "file") return entry;
      if (entry.type === "symlink" && entry.linkname !== undefined) {
        current = normalizeEntryName(entry.linkname.startsWith("/") ? entry.linkname : posix.join(posix.dirname(current), entry.linkname));
      } else if (entry.type === "hardlink" && entry.linkname !== undefined) {
        current = normalizeEntryName(entry.linkname);
      } else if (entry.type === "other") {
        throw new InvalidImageError(`${this.description}: "${entry.name}" is a device, FIFO or other special entry, not a file`, {
          hint: "the archive is damaged or hostile; write it again",
        });
      } else {
        return undefined;
      }
    }
    return undefined;
  }

  /** Stream an entry's data. */
  stream(entry: TarEntry): Readable {
    if (entry.size === 0) return Readable.from([]);
    return createReadStream(this.path, { start: entry.offset, end: entry.offset + entry.size - 1, highWaterMark: 1 << 20 });
  }

  /** Read up to `length` bytes from the start of an entry (for sniffing compression). */
  async readHead(entry: TarEntry, length: number): Promise<Buffer> {
    const handle = await open(this.path, "r");
    try {
      const buf = Buffer.alloc(Math.min(length, entry.size));
      const { bytesRead } = await handle.read(buf, 0, buf.length, entry.offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  /** Read a whole small entry (JSON), refusing one larger than `cap` bytes. */
  async readBytes(entry: TarEntry, cap: number, what: string): Promise<Buffer> {
    if (entry.size > cap) {
      throw new InvalidImageError(`${what} is ${entry.size} bytes, more than the ${cap} allowed`, { hint: "the archive is not an image" });
    }
    const bytes = await this.readHead(entry, entry.size);
    if (bytes.length !== entry.size) throw new SizeMismatchError(what, entry.size, bytes.length);
    return bytes;
  }
}

/** Pipe `content` through a verifier for the descriptor and return the verified stream; errors propagate. */
export function verifiedStream(content: Readable, expected: Pick<Descriptor, "digest" | "size">, what: string): Readable {
  const verifier = createVerifier(expected, what);
  return pipelineCallback(content, verifier, () => {}) as unknown as Readable;
}

interface Region {
  start: number;
  headerLength: number;
  size: number;
  /** reserved: its place is set (reserve()); its header and data are still to come. */
  state: "reserved" | "writing" | "done" | "failed";
  written: Promise<void>;
}

/**
 * A tar file written beside its target: entries of known size get a region reserved at once and are
 * streamed into it (several at a time, in any order), so nothing is buffered or written twice; commit()
 * appends the end-of-archive blocks and renames the file into place, abort() removes it.
 */
export class TarFileWriter {
  #handle: FileHandle;
  #end = 0;
  #regions = new Map<string, Region>();
  #closed = false;
  #committed = false;
  #stop = new AbortController();

  private constructor(
    readonly target: string,
    readonly tempPath: string,
    handle: FileHandle,
    readonly signal: AbortSignal | undefined,
  ) {
    this.#handle = handle;
  }

  /**
   * Create the temp file beside `target` (removing those killed runs left there). Once `signal` is
   * aborted, writes stop and commit() fails, so that an interrupted run leaves no file.
   */
  static async create(target: string, signal?: AbortSignal): Promise<TarFileWriter> {
    // Found now, not when the finished archive cannot be renamed over it.
    if ((await stat(target).catch(() => undefined))?.isDirectory()) {
      throw new InputError(`cannot create ${target}: it is a directory`, { hint: "name a file for the archive" });
    }
    await removeStaleTemps(dirname(target), basename(target));
    const temp = tempPathFor(target);
    try {
      const handle = await open(temp, "wx+");
      trackTemp(temp);
      return new TarFileWriter(target, temp, handle, signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const system = fromSystemError(error, target);
      if (system) throw system;
      throw new InputError(`cannot create ${target}: ${code ?? String(error)}`, {
        hint: code === "ENOENT" ? "the directory does not exist" : undefined,
        cause: error,
      });
    }
  }

  #reserve(length: number): number {
    if (this.#closed) throw new Error("tar writer used after commit or abort");
    const start = this.#end;
    this.#end += length;
    return start;
  }

  /**
   * Set an entry's place now, its data to follow from addStream: entries written concurrently then lie in
   * the order they were reserved, whichever arrives first, so the same inputs give the same file.
   */
  reserve(name: string, size: number): void {
    if (this.#regions.has(name)) return;
    const headerLength = encodeArchiveHeader({ name, type: "file", size, mode: 0o644 }).length;
    const start = this.#reserve(headerLength + size + paddingFor(size));
    this.#regions.set(name, { start, headerLength, size, state: "reserved", written: Promise.resolve() });
  }

  /** Whether an entry of that name was written completely. */
  has(name: string): boolean {
    return this.#regions.get(name)?.state === "done";
  }

  /** Add a small entry held in memory (JSON, a directory when `bytes` is undefined, a symlink with `linkname`). */
  async addBytes(name: string, bytes: Uint8Array | string | undefined, options: { mode?: number; linkname?: string } = {}): Promise<void> {
    const data = bytes === undefined ? Buffer.alloc(0) : Buffer.from(bytes);
    const type = options.linkname !== undefined ? "symlink" : bytes === undefined ? "directory" : "file";
    const fields: ArchiveHeader = {
      name: type === "directory" ? `${name}/` : name,
      type,
      size: data.length,
      mode: options.mode ?? (type === "directory" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
      linkname: options.linkname,
    };
    const header = encodeArchiveHeader(fields);
    const total = Buffer.concat([header, data, Buffer.alloc(paddingFor(data.length))]);
    const start = this.#reserve(total.length);
    const region: Region = { start, headerLength: header.length, size: data.length, state: "writing", written: Promise.resolve() };
    this.#regions.set(name, region);
    region.written = this.#writeAll(total, start).then(
      () => {
        region.state = "done";
      },
      (error: unknown) => {
        region.state = "failed";
        throw fromSystemError(error, this.target) ?? error;
      },
    );
    await region.written;
  }

  async #writeAll(bytes: Buffer, position: number): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.#handle.write(bytes, offset, bytes.length - offset, position + offset);
      offset += bytesWritten;
    }
  }

  /**
   * Stream an entry of `size` bytes into the archive through `verifier` (which fails on a digest or size
   * mismatch). A region that failed is reused when the same name is written again (a retried blob).
   */
  async addStream(name: string, size: number, content: Readable, verifier: Transform): Promise<void> {
    let region = this.#regions.get(name);
    if (region?.state === "writing") await region.written.catch(() => {});
    if (region?.state === "done") {
      // The same blob twice (a duplicate layer): it is already in the archive.
      content.resume();
      return;
    }
    if (region && region.size !== size) throw new SizeMismatchError(name, region.size, size);
    const header = encodeArchiveHeader({ name, type: "file", size, mode: 0o644 });
    if (!region) {
      const start = this.#reserve(header.length + size + paddingFor(size));
      region = { start, headerLength: header.length, size, state: "writing", written: Promise.resolve() };
      this.#regions.set(name, region);
    }
    // Written here also for a region reserved earlier or failed before: the same bytes, wherever it stopped.
    const headerWritten = this.#writeAll(header, region.start);
    const r = region;
    r.state = "writing";
    r.written = (async () => {
      await headerWritten;
      let position = r.start + r.headerLength;
      const limit = position + size;
      const handle = this.#handle;
      const sink = new Writable({
        highWaterMark: 1 << 20,
        writev(chunks, callback) {
          const buffers = chunks.map((c) => c.chunk as Buffer);
          const length = buffers.reduce((n, b) => n + b.length, 0);
          if (position + length > limit) {
            callback(new SizeMismatchError(name, size, position + length - (limit - size)));
            return;
          }
          const at = position;
          position += length;
          writevFully(handle, buffers, at, length).then(
            () => callback(null),
            (error: unknown) => callback(error as Error),
          );
        },
      });
      const stop = this.signal ? AbortSignal.any([this.#stop.signal, this.signal]) : this.#stop.signal;
      await pipeline(content, verifier, sink, { signal: stop });
      if (position !== limit) throw new SizeMismatchError(name, size, size - (limit - position));
      const pad = paddingFor(size);
      if (pad > 0) await this.#writeAll(Buffer.alloc(pad), limit);
    })().then(
      () => {
        r.state = "done";
      },
      (error: unknown) => {
        r.state = "failed";
        throw fromSystemError(error, this.target) ?? error;
      },
    );
    await r.written;
  }

  /** Read back the data of a completed entry (a config to derive metadata from), refusing more than `cap` bytes. */
  async readBack(name: string, cap: number): Promise<Buffer | undefined> {
    const region = this.#regions.get(name);
    if (region?.state !== "done" || region.size > cap) return undefined;
    const data = Buffer.alloc(region.size);
    await this.#handle.read(data, 0, region.size, region.start + region.headerLength);
    return data;
  }

  /** Finish the archive and rename it to the target; fails if any entry is incomplete. */
  async commit(): Promise<void> {
    const broken = [...this.#regions].filter(([, r]) => r.state !== "done").map(([name]) => name);
    if (broken.length > 0) {
      throw new InvalidImageError(`cannot finish ${this.target}: ${broken.length} entries were not written completely (${broken[0]})`, {
        hint: "retry the copy",
      });
    }
    this.signal?.throwIfAborted();
    await withSystemPath(this.target, async () => {
      await this.#writeAll(Buffer.alloc(endOfArchiveSize), this.#reserve(endOfArchiveSize));
      this.#closed = true;
      await this.#handle.sync();
      await this.#handle.close();
      // The last moment a signal can still cancel the archive.
      this.signal?.throwIfAborted();
      await rename(this.tempPath, this.target);
    });
    this.#committed = true;
    untrackTemp(this.tempPath);
  }

  /** Remove the temp file; safe to call at any point, also after commit(). */
  async abort(): Promise<void> {
    if (this.#committed) return;
    this.#closed = true;
    this.#stop.abort();
    await Promise.allSettled([...this.#regions.values()].map((r) => r.written));
    await this.#handle.close().catch(() => {});
    await rm(this.tempPath, { force: true });
    untrackTemp(this.tempPath);
  }
}

/** The archive path of a blob in an OCI layout (`blobs/sha256/<hex>`); validates the digest so it cannot escape. */
export function blobPath(digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `blobs/${algorithm}/${encoded}`;
}

/**
 * An OCI image layout being written into a tar (oci-archive, and the layout inside a docker-archive):
 * `blobs/<alg>/<hex>` entries streamed as they arrive, small metadata files appended by finish().
 */
export class ArchiveLayoutWriter {
  #dirs = new Set<string>();

  private constructor(readonly tar: TarFileWriter) {}

  /** Start the archive in a temp file beside `target`; `signal` cancels it (see TarFileWriter.create). */
  static async create(target: string, signal?: AbortSignal): Promise<ArchiveLayoutWriter> {
    const writer = new ArchiveLayoutWriter(await TarFileWriter.create(target, signal));
    try {
      await writer.#ensureDir("blobs");
      await writer.#ensureDir("blobs/sha256");
    } catch (error) {
      await writer.tar.abort();
      throw error;
    }
    return writer;
  }

  async #ensureDir(name: string): Promise<void> {
    if (this.#dirs.has(name)) return;
    this.#dirs.add(name);
    await this.tar.addBytes(name, undefined);
  }

  /** Whether the blob was written completely. */
  hasBlob(descriptor: Pick<Descriptor, "digest">): boolean {
    return this.tar.has(blobPath(descriptor.digest));
  }

  /** Set the places of blobs about to be written concurrently, in this order (see TarFileWriter.reserve). */
  async expectBlobs(descriptors: readonly Pick<Descriptor, "digest" | "size">[]): Promise<void> {
    for (const descriptor of descriptors) {
      const path = blobPath(descriptor.digest);
      await this.#ensureDir(posix.dirname(path));
      this.tar.reserve(path, descriptor.size);
    }
  }

  /** Stream a blob into the archive, verifying its digest and size on the way. */
  async putBlob(descriptor: Pick<Descriptor, "digest" | "size">, content: Readable, what: string): Promise<void> {
    const path = blobPath(descriptor.digest);
    await this.#ensureDir(posix.dirname(path));
    await this.tar.addStream(path, descriptor.size, content, createVerifier(descriptor, what));
  }

  /** Store bytes held in memory (a manifest) as a blob. */
  async putBlobBytes(digest: string, bytes: Buffer): Promise<void> {
    const path = blobPath(digest);
    if (this.tar.has(path)) return;
    await this.#ensureDir(posix.dirname(path));
    await this.tar.addBytes(path, bytes);
  }
}
