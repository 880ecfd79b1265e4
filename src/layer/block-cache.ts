/**
 * The block cache: `<cacheDir>/blocks/<key[0:2]>/<key>` holds one compressed block (a gzip member or zstd
 * frame) behind a 32-byte prefix recording the CRC-32 and size of the uncompressed bytes it was made
 * from and of the compressed bytes themselves. Nothing read from it is trusted: a reader checks the
 * compressed bytes against the prefix, and the builder checks the uncompressed CRC-32 and size against
 * the block it just produced from the files.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { crc32, gunzip } from "node:zlib";
import { CacheDamagedError } from "../cache.js";
import type { Digest } from "../digest.js";
import { withSystemPath } from "../errors.js";
import { makeDirectory, tempPathFor, trackTemp, untrackTemp, writevFully } from "../fs-atomic.js";
import type { Compression } from "../media-types.js";

const gunzipAsync = promisify(gunzip);

/**
 * Cached blocks a thread may take a layer's bytes from instead of reading its files: per block of the
 * plan, the record of a block taken on trust, or null (read the files).
 */
export interface CachedBlocks {
  cacheDir: string;
  compression: Compression;
  blocks: (BlockInfo | null)[];
}

/** What the layer record keeps about each block. */
export interface BlockInfo {
  key: string;
  /** Uncompressed size and CRC-32. */
  usize: number;
  ucrc: number;
  /** Compressed size and CRC-32. */
  csize: number;
  ccrc: number;
}

const magic = 0x3162636f; // "ocb1"
const prefixSize = 32;

function encodePrefix(info: BlockInfo): Buffer {
  const prefix = Buffer.alloc(prefixSize);
  prefix.writeUInt32LE(magic, 0);
  prefix.writeUInt32LE(info.ucrc >>> 0, 4);
  prefix.writeUIntLE(info.usize, 8, 6);
  prefix.writeUInt32LE(info.ccrc >>> 0, 16);
  prefix.writeUIntLE(info.csize, 20, 6);
  return prefix;
}

/** A cached block read back and checked against its own prefix. */
export interface CachedBlock {
  info: BlockInfo;
  data: Buffer;
}

/** Whether a cached block is the one a trusted record describes (its own bytes were checked against its prefix on reading). */
export function sameBlock(recorded: BlockInfo | undefined, cached: BlockInfo): boolean {
  return (
    recorded !== undefined &&
    recorded.usize === cached.usize &&
    recorded.ucrc === cached.ucrc &&
    recorded.csize === cached.csize &&
    recorded.ccrc === cached.ccrc
  );
}

/** The block store under a cache directory. */
export class BlockCache {
  readonly dir: string;
  /** Directories known to exist (256 at most). */
  readonly #made = new Set<string>();

  constructor(readonly cacheDir: string) {
    this.dir = join(cacheDir, "blocks");
  }

  /** Where a block lives. */
  path(key: string): string {
    return join(this.dir, key.slice(0, 2), key);
  }

  /**
   * Read a block; undefined when it is missing or damaged (a damaged file is removed, so that it is
   * written again).
   */
  async read(key: string): Promise<CachedBlock | undefined> {
    let file: Buffer;
    try {
      file = await readFile(this.path(key));
    } catch {
      return undefined;
    }
    const info = this.#check(key, file);
    if (!info) {
      await rm(this.path(key), { force: true });
      return undefined;
    }
    return { info, data: file.subarray(prefixSize) };
  }

  /**
   * read(), synchronously: open, two reads, close (no fstat, no thread-pool round trips). What a rebuild
   * does 600 times per GiB on the main thread, where async readFile cost more than the copy itself.
   */
  readNow(key: string): CachedBlock | undefined {
    let fd: number;
    try {
      fd = openSync(this.path(key), "r");
    } catch {
      return undefined;
    }
    let file: Buffer | undefined;
    try {
      const prefix = Buffer.allocUnsafe(prefixSize);
      if (readSync(fd, prefix, 0, prefixSize, 0) === prefixSize && prefix.readUInt32LE(0) === magic) {
        const csize = prefix.readUIntLE(20, 6);
        if (csize <= 1 << 30) {
          // One byte more than the prefix says: a longer file is damaged too.
          const whole = Buffer.allocUnsafe(prefixSize + csize + 1);
          prefix.copy(whole);
          let got = prefixSize;
          for (let n = 1; n > 0 && got < whole.length; got += n) n = readSync(fd, whole, got, whole.length - got, got);
          file = whole.subarray(0, got);
        }
      }
    } catch {
      file = undefined;
    } finally {
      closeSync(fd);
    }
    const info = file && this.#check(key, file);
    if (!file || !info) {
      rmSync(this.path(key), { force: true });
      return undefined;
    }
    return { info, data: file.subarray(prefixSize) };
  }

  #check(key: string, file: Buffer): BlockInfo | undefined {
    if (file.length < prefixSize || file.readUInt32LE(0) !== magic) return undefined;
    const info: BlockInfo = {
      key,
      ucrc: file.readUInt32LE(4),
      usize: file.readUIntLE(8, 6),
      ccrc: file.readUInt32LE(16),
      csize: file.readUIntLE(20, 6),
    };
    if (info.csize !== file.length - prefixSize || crc32(file.subarray(prefixSize)) !== info.ccrc) return undefined;
    return info;
  }

  /**
   * A cached block's uncompressed bytes, when it is the block `info` describes and its codec is one this
   * can undo at once (a gzip member, or no compression): gunzip checks the member's own CRC-32, the size is
   * checked here. Undefined when it is missing, damaged or another block, or for zstd. Runs on the thread
   * pool, so several can be unpacked at once.
   */
  async unpacked(info: BlockInfo, compression: Compression): Promise<Buffer | undefined> {
    if (compression === "zstd") return undefined;
    const cached = await this.read(info.key);
    if (!cached || !sameBlock(info, cached.info)) return undefined;
    // One output chunk of the block's size: zlib's default (16 KiB) costs a round trip to the pool for each.
    const options = { chunkSize: Math.max(info.usize, 64), maxOutputLength: info.usize };
    const bytes = compression === "none" ? cached.data : await gunzipAsync(cached.data, options).catch(() => undefined);
    return bytes?.length === info.usize ? bytes : undefined;
  }

  /** Whether every block is present with the size the record says (contents are checked when read). */
  has(blocks: readonly BlockInfo[]): boolean {
    for (const block of blocks) {
      try {
        if (statSync(this.path(block.key)).size !== block.csize + prefixSize) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Store a block (temp file + rename, so a reader never sees half of one); a full disk is one line naming the cache. */
  write(info: BlockInfo, chunks: readonly Buffer[]): Promise<void> {
    return withSystemPath(this.dir, () => this.#write(info, chunks));
  }

  async #write(info: BlockInfo, chunks: readonly Buffer[]): Promise<void> {
    const target = this.path(info.key);
    const dir = join(this.dir, info.key.slice(0, 2));
    if (!this.#made.has(dir)) {
      await makeDirectory(dir);
      this.#made.add(dir);
    }
    const temp = tempPathFor(target);
    trackTemp(temp);
    const handle = await open(temp, "w").catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
      await mkdir(dir, { recursive: true }); // removed while we ran
      return open(temp, "w");
    });
    try {
      await writevFully(handle, [encodePrefix(info), ...chunks], 0, prefixSize + info.csize);
      await handle.close();
      await rename(temp, target);
    } catch (error) {
      await handle.close().catch(() => {});
      await rm(temp, { force: true });
      throw error;
    } finally {
      untrackTemp(temp);
    }
  }

  /**
   * The blob made of the blocks, in order, verified while it streams: each block against its recorded
   * CRC-32 and size, the whole against the descriptor's digest and size. A damaged block is removed
   * (so that the layer's repair makes it again) and the stream fails with a CacheDamagedError.
   */
  open(blocks: readonly BlockInfo[], expected: { digest: Digest; size: number }, what: string): Readable {
    const cache = this;
    async function* generate(): AsyncGenerator<Buffer> {
      const hash = createHash("sha256");
      let size = 0;
      for (const block of blocks) {
        const cached = await cache.read(block.key);
        if (!cached || cached.info.ccrc !== block.ccrc || cached.info.csize !== block.csize) {
          await rm(cache.path(block.key), { force: true });
          throw new CacheDamagedError(
            `${what}: cached block ${block.key.slice(0, 12)} is ${cached ? "not the recorded one" : "missing or damaged"}`,
          );
        }
        hash.update(cached.data);
        size += cached.data.length;
        yield cached.data;
      }
      const actual = `sha256:${hash.digest("hex")}`;
      if (size !== expected.size || actual !== expected.digest) {
        throw new CacheDamagedError(`${what}: the cached blocks make ${actual} (${size} bytes), not ${expected.digest} (${expected.size})`);
      }
    }
    return Readable.from(generate(), { objectMode: false, highWaterMark: 1 << 20 });
  }
}
