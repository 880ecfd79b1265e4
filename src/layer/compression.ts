/**
 * Layer codecs and input detection. A layer blob is a sequence of independently compressed blocks: gzip
 * members (RFC 1952 §2.2: a gzip file is a series of members) or zstd frames (RFC 8878 §3.1), each
 * decodable on its own, so blocks compress in parallel (worker threads, or the libuv pool for zlib) and are cached one by one.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import * as zlib from "node:zlib";
import { InputError } from "../errors.js";
import type { Compression } from "../media-types.js";
import type { Deflater } from "./libdeflate.js";
import { ThreadPool } from "./threads.js";

/** Compresses one block into one self-contained gzip member or zstd frame. */
export interface BlockCodec {
  /** Names the codec, level and implementation: part of every block cache key. */
  readonly id: string;
  readonly compression: Compression;
  /**
   * Compress `data` into one member/frame, as one or more buffers, with the CRC-32 of `data`. With `owned`,
   * `data` is the only view of its whole ArrayBuffer, and the codec may move that memory to another thread:
   * the caller then uses the result's `input` instead of `data`.
   */
  compress(data: Buffer, owned?: boolean): Promise<Compressed>;
  /**
   * Get ready now for blocks of `total` bytes in all that are about to come: start a compressing thread,
   * when the codec would use one for them, or load what compresses them on the calling thread.
   */
  warm?(total: number): void;
  /** Release threads the codec holds. */
  close(): Promise<void>;
}

/** A compressed block and the CRC-32 of its uncompressed bytes. */
export interface Compressed {
  chunks: Buffer[];
  crc: number;
  /** The bytes given to compress, back from the thread they were moved to (only when `owned`). */
  input?: Buffer;
}

/** Default levels: gzip 1 and zstd 3 (measurements in docs/compression.md). */
export const defaultLevel: Record<Compression, number> = { gzip: 1, zstd: 3, none: 0 };

/**
 * Make zlib's gzip member canonical: no name, mtime 0 (zlib writes these already), XFL 0 and OS 255
 * ("unknown") instead of a level- and platform-dependent pair, so the bytes never depend on the machine.
 * zlib computes the CRC-32 for the trailer on the pool thread that compresses.
 */
function canonicalMember(member: Buffer): Buffer {
  member[8] = 0;
  member[9] = 0xff;
  return member;
}

/** Read back a gzip member's trailer: the CRC-32 and size (mod 2^32) of its uncompressed bytes. */
export function gzipTrailer(member: Buffer): { crc: number; size: number } | undefined {
  if (member.length < 18 || member[0] !== 0x1f || member[1] !== 0x8b) return undefined;
  return { crc: member.readUInt32LE(member.length - 8), size: member.readUInt32LE(member.length - 4) };
}

function gzipCodec(level: number): BlockCodec {
  const options = { level, windowBits: 15, memLevel: 9, strategy: zlib.constants.Z_DEFAULT_STRATEGY };
  return {
    id: gzipCodecId(level, "zlib"),
    compression: "gzip",
    compress(data) {
      return new Promise((resolve, reject) => {
        // One output buffer of about the member's size: fewer round trips through the main thread than
        // zlib's 16 KiB default (25-45% slower in parallel), and no concatenation of chunks.
        const chunkSize = Math.max(64 << 10, Math.ceil((data.length * (level >= 4 ? 0.5 : 0.6)) / 4096) * 4096);
        zlib.gzip(data, { ...options, chunkSize }, (error, member) => {
          if (error) reject(error);
          else resolve({ chunks: [canonicalMember(member)], crc: member.readUInt32LE(member.length - 8) });
        });
      });
    },
    async close() {},
  };
}

const noneCodec: BlockCodec = {
  id: "none",
  compression: "none",
  async compress(data) {
    return { chunks: [data], crc: zlib.crc32(data) };
  },
  async close() {},
};

type ZstdCallback = (error: Error | null, result: Buffer) => void;
const nodeZstd = zlib as unknown as {
  zstdCompress?: (data: Buffer, options: { params: Record<number, number> }, callback: ZstdCallback) => void;
  createZstdDecompress?: () => NodeJS.ReadWriteStream;
  constants: Record<string, number>;
};

/** Whether this Node has zstd in zlib (Node >= 22.15). */
export function hasNodeZstd(): boolean {
  return typeof nodeZstd.zstdCompress === "function" && typeof nodeZstd.constants.ZSTD_c_compressionLevel === "number";
}

/** Which deflate makes gzip members: libdeflate (WebAssembly, the default) or Node's zlib. */
export type GzipEngine = "libdeflate" | "zlib";

/** gzip levels 1-9 go to libdeflate unless zlib is asked for (to compare them, or as a way out); level 0 (stored) is zlib's. */
const gzipWithZlib = (level: number, engine: GzipEngine | undefined): boolean => level === 0 || engine === "zlib";

let libdeflateVersion: string | undefined;
/** The libdeflate package's version, from its package.json (its exports do not include that file). */
function libdeflateVersionOf(): string {
  if (libdeflateVersion === undefined) {
    const require = createRequire(import.meta.url);
    const manifest = join(dirname(require.resolve("libdeflate")), "package.json");
    libdeflateVersion = (JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version;
  }
  return libdeflateVersion;
}

const gzipCodecId = (level: number, engine?: GzipEngine): string =>
  gzipWithZlib(level, engine) ? `gzip/${level}/mem9/zlib-${process.versions.zlib}` : `gzip/${level}/libdeflate-${libdeflateVersionOf()}`;
const nodeZstdCodecId = (level: number): string => `zstd/${level}/node-${process.versions.zstd ?? process.version}`;

/**
 * The id createCodec's codec will have, known without making it; undefined when only the codec can tell
 * (zstd from the npm package: its version) or the level is out of range (createCodec says why).
 */
export function codecIdOf(compression: Compression, level?: number, engine?: GzipEngine): string | undefined {
  if (compression === "none") return noneCodec.id;
  const chosen = level ?? defaultLevel[compression];
  if (compression === "gzip") return Number.isInteger(chosen) && chosen >= 0 && chosen <= 9 ? gzipCodecId(chosen, engine) : undefined;
  return hasNodeZstd() && Number.isInteger(chosen) && chosen >= 1 && chosen <= 22 ? nodeZstdCodecId(chosen) : undefined;
}

function nodeZstdCodec(level: number): BlockCodec {
  const compress = nodeZstd.zstdCompress as NonNullable<typeof nodeZstd.zstdCompress>;
  const params = { [nodeZstd.constants.ZSTD_c_compressionLevel as number]: level };
  return {
    id: nodeZstdCodecId(level),
    compression: "zstd",
    compress(data) {
      return new Promise((resolve, reject) =>
        compress(data, { params }, (error, out) => (error ? reject(error) : resolve({ chunks: [out], crc: zlib.crc32(data) }))),
      );
    },
    async close() {},
  };
}

/** Threads per compressing pool: one per core, up to 4. */
const poolSize = (): number => Math.max(1, Math.min(availableParallelism(), 4));

/** Compressing threads, kept from one layer to the next (idle, they hold nothing open). */
const pools = new Map<string, ThreadPool>();

function poolOf(kind: "deflate" | "zstd", level: number): ThreadPool {
  const key = `${kind}/${level}`;
  let pool = pools.get(key);
  if (!pool) {
    const url = new URL(kind === "deflate" ? "./deflate-worker.js" : "./zstd-worker.js", import.meta.url);
    pool = new ThreadPool(() => new Worker(url, { workerData: { level } }), `${kind} compressing`, poolSize());
    pools.set(key, pool);
  }
  return pool;
}

/**
 * A block's memory as a thread can take it: the caller's own when it owns it (the whole buffer, which may
 * be larger than the block: the sources allocate blocks of one capacity and reuse them), else a copy.
 */
function movable(data: Buffer, owned: boolean | undefined): ArrayBuffer {
  return owned && data.byteOffset === 0 && data.buffer instanceof ArrayBuffer ? data.buffer : (new Uint8Array(data).buffer as ArrayBuffer);
}

/** Wait for a codec's own requests before it is closed (the pool's threads stay for the next codec). */
function settled(pending: Set<Promise<unknown>>): Promise<unknown> {
  return Promise.allSettled([...pending]);
}

/**
 * zstd through @cloudpss/zstd (Node 20), which compresses synchronously: one worker thread per core,
 * each with its own compressor (see zstd-worker.ts).
 */
async function napiZstdCodec(level: number): Promise<BlockCodec> {
  const pool = poolOf("zstd", level);
  let version: string;
  try {
    version = await pool.request<string>({ version: true });
  } catch (error) {
    throw new InputError("zstd compression needs Node >= 22.15 or the optional dependency @cloudpss/zstd", {
      hint: "upgrade Node, reinstall ocify with optional dependencies, or use gzip compression",
      cause: error,
    });
  }
  const pending = new Set<Promise<unknown>>();
  return {
    id: `zstd/${level}/napi-${version}`,
    compression: "zstd",
    async compress(data, owned) {
      const length = data.length;
      const crc = zlib.crc32(data);
      const memory = movable(data, owned);
      const request = pool.request<{ frame: Uint8Array; data: ArrayBuffer }>({ data: memory, length }, [memory]);
      pending.add(request);
      try {
        const out = await request;
        const frame = Buffer.from(out.frame.buffer, out.frame.byteOffset, out.frame.byteLength);
        return owned ? { chunks: [frame], crc, input: Buffer.from(out.data, 0, length) } : { chunks: [frame], crc };
      } finally {
        pending.delete(request);
      }
    },
    async close() {
      await settled(pending);
    },
  };
}

/**
 * Blocks up to this size are compressed on the calling thread: the module loads there in ~10 ms and
 * compresses 64 KiB in well under 1 ms, where starting a thread costs ~45 ms of CPU (the small layer of a
 * rebuild, the tail of a tree).
 */
const inlineLimit = 64 << 10;
/**
 * At level 1, a build warmed for at most this much to compress in all (one of the largest blocks: a
 * one-file rebuild of a big tree) compresses it on the calling thread too: ~55 ms of work, about what a
 * thread's start costs (~50 ms, 45–65 ms of CPU) before doing the same work. Slower levels would hold the
 * calling thread (which feeds an upload) up to 4x longer, so they keep to inlineLimit. The value is
 * blocks.ts's blockCapacity, written out: importing blocks.ts here would load it (and tar.ts) before the
 * CLI hands its first layer to the planner thread (planner.ts imports this module for codecIdOf).
 */
const inlineBudget = (4 << 20) + (64 << 10);

const inlineDeflaters = new Map<number, Promise<Deflater>>();

/** The calling thread's Deflater for `level`, its module loaded once. */
function inlineDeflater(level: number): Promise<Deflater> {
  let deflater = inlineDeflaters.get(level);
  if (!deflater) {
    deflater = import("./libdeflate.js").then((module) => module.loadDeflater(level));
    deflater.catch(() => inlineDeflaters.delete(level));
    inlineDeflaters.set(level, deflater);
  }
  return deflater;
}

/** Compress one block on the calling thread, with the same module (so the same bytes) as the threads. */
async function deflateHere(level: number, data: Buffer): Promise<Compressed> {
  let deflater: Deflater;
  try {
    deflater = await inlineDeflater(level);
  } catch (error) {
    throw libdeflateFailed((error as Error).message);
  }
  const compressed = deflater.gzip(data);
  const member = canonicalMember(Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength));
  return { chunks: [member], crc: member.readUInt32LE(member.length - 8) };
}

/** Compress one block on a thread of the pool; its memory moves there and back when the caller owns it. */
async function deflateOnThread(pool: ThreadPool, data: Buffer, owned: boolean | undefined): Promise<Compressed> {
  const length = data.length;
  const memory = movable(data, owned);
  const out = await pool.request<{ member: Uint8Array; data: ArrayBuffer }>({ data: memory, length }, [memory]);
  const member = canonicalMember(Buffer.from(out.member.buffer, out.member.byteOffset, out.member.byteLength));
  const crc = member.readUInt32LE(member.length - 8);
  return owned ? { chunks: [member], crc, input: Buffer.from(out.data, 0, length) } : { chunks: [member], crc };
}

/**
 * gzip through libdeflate (WebAssembly) on worker threads, one per core (up to 4), started as blocks
 * arrive: a layer of one block costs one thread, and a block of up to 64 KiB none (it is compressed on
 * the calling thread, by the same module: the same bytes), nor, at level 1, one block's worth in all.
 */
function libdeflateCodec(level: number): BlockCodec {
  const pool = poolOf("deflate", level);
  const pending = new Set<Promise<unknown>>();
  /** Bytes warm() allowed to compress on the calling thread, whatever the block's size. */
  let inlineLeft = 0;
  return {
    id: gzipCodecId(level),
    compression: "gzip",
    async compress(data, owned) {
      if (data.length <= inlineLimit || data.length <= inlineLeft) {
        if (data.length > inlineLimit) inlineLeft -= data.length;
        const done = await deflateHere(level, data);
        return owned ? { ...done, input: data } : done;
      }
      const request = deflateOnThread(pool, data, owned);
      pending.add(request);
      return request.finally(() => pending.delete(request));
    },
    warm(total) {
      if (total > (level <= 1 ? inlineBudget : inlineLimit)) pool.warm();
      else {
        inlineLeft = total;
        inlineDeflater(level).catch(() => {}); // compress() reports a failure
      }
    },
    async close() {
      await settled(pending);
    },
  };
}

/** libdeflate's module did not load on this thread: what to do about it. */
function libdeflateFailed(reason: string): InputError {
  return new InputError(`gzip compression could not start: ${reason}`, {
    hint: "reinstall ocify with its dependencies, or use Node's zlib for gzip (gzipEngine: zlib)",
  });
}

/** The block codec for a compression and level (default level when undefined). */
export async function createCodec(compression: Compression, level?: number, engine?: GzipEngine): Promise<BlockCodec> {
  if (compression === "none") return noneCodec;
  if (compression === "gzip") {
    const chosen = level ?? defaultLevel.gzip;
    if (!Number.isInteger(chosen) || chosen < 0 || chosen > 9)
      throw new InputError(`gzip level ${chosen} is out of range`, { hint: "use 0 to 9" });
    return gzipWithZlib(chosen, engine) ? gzipCodec(chosen) : libdeflateCodec(chosen);
  }
  const chosen = level ?? defaultLevel.zstd;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > 22)
    throw new InputError(`zstd level ${chosen} is out of range`, { hint: "use 1 to 22" });
  return hasNodeZstd() ? nodeZstdCodec(chosen) : napiZstdCodec(chosen);
}
