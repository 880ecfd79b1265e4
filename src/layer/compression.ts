/**
 * Layer codecs and input detection. A layer blob is a sequence of independently compressed blocks: gzip
 * members (RFC 1952 §2.2: a gzip file is a series of members) or zstd frames (RFC 8878 §3.1), each
 * decodable on its own, so blocks compress in parallel (worker threads, or the libuv pool for zlib) and are cached one by one.
 */
import { spawn } from "node:child_process";
import { closeSync, createReadStream, openSync, readFileSync, readSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { type Duplex, pipeline, Readable } from "node:stream";
import { Worker } from "node:worker_threads";
import * as zlib from "node:zlib";
import { boundedExpansion } from "../decompression.js";
import { InputError } from "../errors.js";
import type { Compression } from "../media-types.js";
import type { Deflater } from "./libdeflate.js";

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
    id: gzipCodecId(level),
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

/**
 * gzip levels 1-9 go to libdeflate, unless OCIFY_GZIP=zlib asks for Node's zlib (to compare them, or as a
 * way out); level 0 (stored) is zlib's.
 */
const gzipWithZlib = (level: number): boolean => level === 0 || process.env.OCIFY_GZIP === "zlib";

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

const gzipCodecId = (level: number): string =>
  gzipWithZlib(level) ? `gzip/${level}/mem9/zlib-${process.versions.zlib}` : `gzip/${level}/libdeflate-${libdeflateVersionOf()}`;
const nodeZstdCodecId = (level: number): string => `zstd/${level}/node-${process.versions.zstd ?? process.version}`;

/**
 * The id createCodec's codec will have, known without making it; undefined when only the codec can tell
 * (zstd from the npm package: its version) or the level is out of range (createCodec says why).
 */
export function codecIdOf(compression: Compression, level?: number): string | undefined {
  if (compression === "none") return noneCodec.id;
  const chosen = level ?? defaultLevel[compression];
  if (compression === "gzip") return Number.isInteger(chosen) && chosen >= 0 && chosen <= 9 ? gzipCodecId(chosen) : undefined;
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

/**
 * zstd through @cloudpss/zstd (Node 20), which compresses synchronously: one worker thread per core, each
 * with its own compressor (see zstd-worker.ts). Workers are shut down only once idle.
 */
async function napiZstdCodec(level: number): Promise<BlockCodec> {
  const size = Math.max(1, Math.min(availableParallelism(), 4));
  const workers = Array.from({ length: size }, () => new Worker(new URL("./zstd-worker.js", import.meta.url), { workerData: { level } }));
  const pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  let failure: Error | undefined;
  let idle: (() => void) | undefined;
  const started = workers.map(
    (worker) =>
      new Promise<string>((resolve, reject) => {
        worker.once("message", (message: { version?: string; error?: string }) =>
          message.version ? resolve(message.version) : reject(new Error(message.error ?? "zstd worker failed")),
        );
        worker.once("error", reject);
      }),
  );
  let version: string;
  try {
    [version] = (await Promise.all(started)) as [string];
  } catch (error) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw new InputError("zstd compression needs Node >= 22.15 or the optional dependency @cloudpss/zstd", {
      hint: "upgrade Node, reinstall ocify with optional dependencies, or use --compression gzip",
      cause: error,
    });
  }
  for (const worker of workers) {
    worker.on("message", (message: { id: number; data?: Uint8Array; error?: string }) => {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (waiter) {
        if (message.error !== undefined || !message.data) waiter.reject(new Error(message.error ?? "zstd worker failed"));
        else waiter.resolve(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength));
      }
      if (pending.size === 0) idle?.();
    });
    worker.on("error", (error) => {
      failure = error;
      for (const waiter of pending.values()) waiter.reject(error);
      pending.clear();
      idle?.();
    });
  }
  let nextId = 0;
  return {
    id: `zstd/${level}/napi-${version}`,
    compression: "zstd",
    async compress(data) {
      if (failure) throw failure;
      const out = new Promise<Buffer>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        // Copy into a transferable buffer: the caller keeps `data` for hashing and retries.
        const copy = new Uint8Array(data);
        (workers[id % workers.length] as Worker).postMessage({ id, data: copy }, [copy.buffer]);
      });
      const crc = zlib.crc32(data);
      return { chunks: [await out], crc };
    },
    async close() {
      if (pending.size > 0) await new Promise<void>((resolve) => (idle = resolve));
      await Promise.all(
        workers.map((worker) => {
          const exited = new Promise((resolve) => worker.once("exit", resolve));
          worker.postMessage({ close: true });
          return exited;
        }),
      );
    },
  };
}

/** One compressing thread and what it has in hand. */
interface DeflateThread {
  worker: Worker;
  busy: number;
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

/** libdeflate's module did not load (on a thread or here): what to do about it. */
function couldNotStart(reason: string): InputError {
  return new InputError(`gzip compression could not start: ${reason}`, {
    hint: "reinstall ocify with its dependencies, or set OCIFY_GZIP=zlib",
  });
}

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

/**
 * gzip through libdeflate (WebAssembly) on worker threads, one per core (up to 4), started as blocks
 * arrive: a layer of one block costs one thread, and a block of up to 64 KiB none (it is compressed on
 * the calling thread, by the same module: the same bytes). A block's memory moves to the thread and back
 * when the caller owns it, and is copied otherwise.
 */
function libdeflateCodec(level: number): BlockCodec {
  const limit = Math.max(1, Math.min(availableParallelism(), 4));
  const threads: DeflateThread[] = [];
  const pending = new Map<
    number,
    { thread: DeflateThread; length: number; resolve: (c: Compressed) => void; reject: (e: Error) => void }
  >();
  let failure: Error | undefined;
  let idle: (() => void) | undefined;
  let nextId = 0;
  /** Bytes warm() allowed to compress on the calling thread, whatever the block's size. */
  let inlineLeft = 0;

  const fail = (thread: DeflateThread | undefined, error: Error): void => {
    failure ??= error;
    for (const [id, waiter] of pending) {
      if (thread && waiter.thread !== thread) continue;
      pending.delete(id);
      waiter.reject(error);
    }
    if (pending.size === 0) idle?.();
  };
  const adopt = (thread: DeflateThread): DeflateThread => {
    const { worker } = thread;
    worker.removeAllListeners();
    worker.ref();
    worker.on("message", (message: { id?: number; member?: Uint8Array; data?: ArrayBuffer; error?: string; ready?: boolean }) => {
      if (message.ready) return;
      if (message.id === undefined) {
        fail(thread, couldNotStart(message.error ?? "unknown error"));
        return;
      }
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      thread.busy--;
      if (waiter) {
        if (message.error !== undefined || !message.member || !message.data)
          waiter.reject(new Error(message.error ?? "gzip worker failed"));
        else {
          const member = canonicalMember(Buffer.from(message.member.buffer, message.member.byteOffset, message.member.byteLength));
          const crc = member.readUInt32LE(member.length - 8);
          waiter.resolve({ chunks: [member], crc, input: Buffer.from(message.data, 0, waiter.length) });
        }
      }
      if (pending.size === 0) idle?.();
    });
    worker.on("error", (error) => fail(thread, error));
    worker.on("exit", () => {
      const index = threads.indexOf(thread);
      if (index >= 0) threads.splice(index, 1);
      if (thread.busy > 0) fail(thread, new Error("a gzip thread stopped unexpectedly"));
    });
    threads.push(thread);
    return thread;
  };
  // A thread left by an earlier layer first, else a new one.
  const start = (): DeflateThread => adopt(parked(level).pop() ?? { worker: startDeflateThread(level), busy: 0 });

  const inline = async (data: Buffer): Promise<Compressed> => {
    let deflater: Deflater;
    try {
      deflater = await inlineDeflater(level);
    } catch (error) {
      throw couldNotStart((error as Error).message);
    }
    const compressed = deflater.gzip(data);
    const member = canonicalMember(Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength));
    return { chunks: [member], crc: member.readUInt32LE(member.length - 8) };
  };

  return {
    id: gzipCodecId(level),
    compression: "gzip",
    compress(data, owned) {
      if (failure) return Promise.reject(failure);
      if (data.length <= inlineLimit || data.length <= inlineLeft) {
        if (data.length > inlineLimit) inlineLeft -= data.length;
        return inline(data).then((done) => (owned ? { ...done, input: data } : done));
      }
      const thread =
        threads.find((t) => t.busy === 0) ??
        (threads.length < limit ? start() : threads.reduce((a, b) => (b.busy < a.busy ? b : a), threads[0] as DeflateThread));
      const length = data.length;
      // The thread gets memory of its own: the caller's when it owns it, else a copy.
      const memory =
        owned && data.byteOffset === 0 && data.buffer instanceof ArrayBuffer ? data.buffer : (new Uint8Array(data).buffer as ArrayBuffer);
      const id = nextId++;
      thread.busy++;
      return new Promise<Compressed>((resolve, reject) => {
        pending.set(id, {
          thread,
          length,
          resolve: (compressed) => resolve(owned ? compressed : { chunks: compressed.chunks, crc: compressed.crc }),
          reject,
        });
        thread.worker.postMessage({ id, data: memory, length }, [memory]);
      });
    },
    warm(total) {
      if (failure) return;
      if (total > (level <= 1 ? inlineBudget : inlineLimit)) {
        if (threads.length === 0) start();
      } else {
        inlineLeft = total;
        inlineDeflater(level).catch(() => {}); // compress() reports a failure
      }
    },
    async close() {
      if (pending.size > 0) await new Promise<void>((resolve) => (idle = resolve));
      // Idle threads wait for the next layer, without keeping the process alive.
      for (const thread of threads.splice(0)) park(level, thread.worker);
    },
  };
}

const parkedThreads = new Map<number, DeflateThread[]>();

function parked(level: number): DeflateThread[] {
  let list = parkedThreads.get(level);
  if (!list) {
    list = [];
    parkedThreads.set(level, list);
  }
  return list;
}

function startDeflateThread(level: number): Worker {
  return new Worker(new URL("./deflate-worker.js", import.meta.url), { workerData: { level } });
}

/** Keep an idle compressing thread for later codecs of the same level; it does not hold the process open. */
function park(level: number, worker: Worker): void {
  const thread: DeflateThread = { worker, busy: 0 };
  worker.removeAllListeners();
  worker.on("error", () => {});
  worker.once("exit", () => {
    const list = parked(level);
    const index = list.indexOf(thread);
    if (index >= 0) list.splice(index, 1);
  });
  worker.unref();
  parked(level).push(thread);
}

/** The block codec for a compression and level (default level when undefined). */
export async function createCodec(compression: Compression, level?: number): Promise<BlockCodec> {
  if (compression === "none") return noneCodec;
  if (compression === "gzip") {
    const chosen = level ?? defaultLevel.gzip;
    if (!Number.isInteger(chosen) || chosen < 0 || chosen > 9)
      throw new InputError(`gzip level ${chosen} is out of range`, { hint: "use 0 to 9" });
    return gzipWithZlib(chosen) ? gzipCodec(chosen) : libdeflateCodec(chosen);
  }
  const chosen = level ?? defaultLevel.zstd;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > 22)
    throw new InputError(`zstd level ${chosen} is out of range`, { hint: "use 1 to 22" });
  return hasNodeZstd() ? nodeZstdCodec(chosen) : napiZstdCodec(chosen);
}

/** The compression of a stream, from its first bytes (magic numbers), or "tar" / "unknown". */
export type InputFormat = "gzip" | "zstd" | "xz" | "bzip2" | "tar" | "unknown";

/** Detect a tarball's compression by content, never by name. */
export function detectFormat(head: Buffer): InputFormat {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head.length >= 3 && head.subarray(0, 3).toString("latin1") === "BZh") return "bzip2";
  if (head.length >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "tar";
  return "unknown";
}

/** Read the first bytes of a file. */
export function readHead(path: string, length = 512): Buffer {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(length);
    return head.subarray(0, readSync(fd, head, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

/** The decompressed bytes of a tarball, and a promise that settles when the decoder finished cleanly. */
export interface DecodedStream {
  stream: Readable;
  format: InputFormat;
  finished(): Promise<void>;
}

/** A decompressing command (xz, bzip2, zstd) reading the file at `input`, or the stream `input` on its stdin. */
function spawnDecoder(command: string, input: string | Readable, what: string, format: InputFormat): DecodedStream {
  const fromStream = typeof input !== "string";
  const child = spawn(command, fromStream ? ["-dc"] : ["-dc", input], { stdio: ["pipe", "pipe", "pipe"] });
  if (!fromStream) child.stdin.end();
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  // The input's end or failure is the decoder's to report (truncated data makes it exit non-zero). The
  // expansion is bounded against the compressed bytes fed to it (a file's: its whole size).
  const bound = boundedExpansion(what, fromStream ? undefined : statSync(input).size);
  if (fromStream) pipeline(input, bound.input, child.stdin, () => {});
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "ENOENT"
          ? new InputError(`${what} is ${format}-compressed and the ${command} command was not found`, {
              hint: `install ${command === "xz" ? "xz-utils" : command}, or decompress it first`,
            })
          : error,
      );
    });
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new InputError(`${command} could not decompress ${what}: ${stderr.trim() || `exit code ${code}`}`));
    });
  });
  exited.catch((error: unknown) => child.stdout.destroy(error as Error));
  pipeline(child.stdout, bound.output, (error) => {
    if (error) child.kill();
  });
  return { stream: bound.output, format, finished: () => exited };
}

/** Open a tarball, decompressing gzip, zstd, xz or bzip2 (detected by content). */
export async function openTarball(path: string): Promise<DecodedStream> {
  return decode(readHead(path), () => createReadStream(path, { highWaterMark: 1 << 20 }), path, path);
}

/**
 * Open a tarball that arrives as a stream (standard input, a FIFO): its first bytes are read to detect
 * the compression and handed on with the rest, so the stream is read once.
 */
export async function openTarballStream(input: Readable, what: string): Promise<DecodedStream> {
  const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const peeked: Buffer[] = [];
  let length = 0;
  while (length < 512) {
    const next = await iterator.next();
    if (next.done) break;
    peeked.push(next.value);
    length += next.value.length;
  }
  const rest = async function* (): AsyncGenerator<Buffer> {
    yield* peeked;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  };
  return decode(Buffer.concat(peeked), () => Readable.from(rest(), { objectMode: false }), input, what);
}

/** Decode a tarball whose first bytes are `head`; `open` gives its whole byte stream, once. */
async function decode(head: Buffer, open: () => Readable, source: string | Readable, what: string): Promise<DecodedStream> {
  const format = detectFormat(head);
  switch (format) {
    case "gzip": {
      const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
      return decodeWith(open(), gunzip as unknown as NodeJS.ReadWriteStream, format, what);
    }
    case "zstd": {
      if (typeof nodeZstd.createZstdDecompress === "function") return decodeWith(open(), nodeZstd.createZstdDecompress(), format, what);
      try {
        const module = (await import("@cloudpss/zstd/napi" as string)) as { Decompressor: new () => NodeJS.ReadWriteStream };
        return decodeWith(open(), new module.Decompressor(), format, what);
      } catch {
        return spawnDecoder("zstd", typeof source === "string" ? source : open(), what, format);
      }
    }
    case "xz":
    case "bzip2":
      return spawnDecoder(format, typeof source === "string" ? source : open(), what, format);
    default:
      return { stream: open(), format, finished: async () => {} };
  }
}

/** `input` decoded, its expansion bounded (decompression.ts): a bomb fails the stream with one line. */
function decodeWith(input: Readable, decoder: NodeJS.ReadWriteStream, format: InputFormat, what: string): DecodedStream {
  let settle: (error?: Error | null) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error ? reject(error) : resolve());
  });
  done.catch(() => {});
  const bound = boundedExpansion(what);
  const stream = pipeline(input, bound.input, decoder as unknown as Duplex, bound.output, (error) => settle(error));
  return { stream: stream as Readable, format, finished: () => done };
}
