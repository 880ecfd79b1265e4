/**
 * Stream codecs: the one sniffer (gzip, zstd, xz, bzip2 and plain tar told apart by their first bytes,
 * never by a name), the one decoder chain (gzip by Node's zlib; zstd by Node's zlib on Node >= 22.15,
 * else the optional @cloudpss/zstd addon, else the `zstd` command; xz and bzip2 by their commands), and a
 * compressing stream. The layer engine compresses in blocks on threads of its own
 * (layer/compression.ts); these are for what arrives or leaves as one stream: layers, archives, tarballs.
 */
import { spawn } from "node:child_process";
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import { Duplex, pipeline, Readable, Transform, Writable } from "node:stream";
import * as zlib from "node:zlib";
import { boundedExpansion } from "./decompression.js";
import { InputError, InvalidImageError } from "./errors.js";
import type { Compression } from "./media-types.js";

/** What a stream is, from its first bytes (magic numbers): a compression, a plain tar, or unknown. */
export type InputFormat = "gzip" | "zstd" | "xz" | "bzip2" | "tar" | "unknown";

const magics: [InputFormat, number[]][] = [
  ["gzip", [0x1f, 0x8b]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["bzip2", [0x42, 0x5a, 0x68]], // "BZh"
];

/** Detect what a stream is from its first bytes (512 of them tell a plain tar by its ustar magic). */
export function detectFormat(head: Uint8Array): InputFormat {
  for (const [format, magic] of magics) if (magic.every((byte, i) => head[i] === byte)) return format;
  if (head.length >= 262 && Buffer.from(head.buffer, head.byteOffset + 257, 5).toString("latin1") === "ustar") return "tar";
  return "unknown";
}

/** The compression a blob starts with, as a layer can have it (gzip, zstd), else "none". */
export function detectCompression(head: Uint8Array): Compression {
  const format = detectFormat(head);
  return format === "gzip" || format === "zstd" ? format : "none";
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

type ZstdZlib = { createZstdDecompress?: (options?: { chunkSize?: number }) => Duplex };

/**
 * A decompressing stream for what `format` names, or undefined for nothing to undo ("none", "tar",
 * "unknown"). `what` names the input in errors (a command that is missing or fails).
 */
export async function createDecompressor(format: InputFormat | Compression, what = "a layer"): Promise<Duplex | undefined> {
  if (format === "gzip") return zlib.createGunzip({ chunkSize: 1 << 20 });
  if (format === "xz" || format === "bzip2") return commandDecoder(format, what);
  if (format !== "zstd") return undefined;
  const native = (zlib as unknown as ZstdZlib).createZstdDecompress;
  if (typeof native === "function") return native({ chunkSize: 1 << 20 });
  try {
    const addon = (await import("@cloudpss/zstd")) as { Decompressor?: new () => Duplex };
    if (addon.Decompressor) return new addon.Decompressor();
  } catch {
    // optional dependency absent: fall through to the command
  }
  return commandDecoder("zstd", what);
}

/**
 * A decompressing command (`xz -dc`, `bzip2 -dc`, `zstd -dc`) as a stream. Its output ends only once the
 * command exited 0: a truncated input, which makes it exit non-zero after writing what it could, fails
 * the stream instead of ending it early.
 */
function commandDecoder(command: "xz" | "bzip2" | "zstd", what: string): Duplex {
  const child = spawn(command, ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "ENOENT"
          ? new InputError(`${what} is ${command}-compressed and the ${command} command was not found`, {
              hint: `install ${command === "xz" ? "xz-utils" : command}, or decompress it first`,
            })
          : error,
      );
    });
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new InvalidImageError(`${command} could not decompress ${what}: ${stderr.trim() || `exit code ${code}`}`));
    });
  });
  exited.catch(() => {});
  async function* output(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
    } catch (error) {
      await exited; // the command's own failure (not found, bad data) says more than a closed pipe
      throw error;
    }
    await exited;
  }
  return Duplex.from({ writable: commandInput(child.stdin), readable: Readable.from(output(), { objectMode: false }) });
}

/**
 * The side a command's input is written to. A command that stops reading (it failed, or was never
 * started) makes the rest of the input be dropped, not a broken pipe: its exit status says what went wrong.
 */
function commandInput(stdin: Writable): Writable {
  stdin.on("error", () => {});
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      if (stdin.destroyed || stdin.writableEnded || stdin.write(chunk)) {
        callback();
        return;
      }
      const resume = () => {
        stdin.off("drain", resume);
        stdin.off("close", resume);
        callback();
      };
      stdin.on("drain", resume);
      stdin.on("close", resume);
    },
    final(callback) {
      stdin.end();
      callback();
    },
    destroy(error, callback) {
      stdin.destroy();
      callback(error);
    },
  });
}

/** The decompressed bytes of a tarball, and a promise that settles when the decoder finished cleanly. */
export interface DecodedStream {
  stream: Readable;
  format: InputFormat;
  finished(): Promise<void>;
}

/** Open a tarball file, decompressing it by what its first bytes say. */
export async function openTarball(path: string): Promise<DecodedStream> {
  return decode(readHead(path), createReadStream(path, { highWaterMark: 1 << 20 }), path);
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
  return decode(Buffer.concat(peeked), Readable.from(rest(), { objectMode: false }), what);
}

/** Decode a tarball whose first bytes are `head` and whose whole byte stream is `input`. */
async function decode(head: Buffer, input: Readable, what: string): Promise<DecodedStream> {
  const format = detectFormat(head);
  let decoder: Duplex | undefined;
  try {
    decoder = await createDecompressor(format, what);
  } catch (error) {
    input.destroy();
    throw error;
  }
  if (!decoder) return { stream: input, format, finished: async () => {} };
  let settle: (error?: Error | null) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error ? reject(error) : resolve());
  });
  done.catch(() => {});
  // The expansion is bounded against the compressed bytes read (decompression.ts): a bomb fails with one line.
  const bound = boundedExpansion(what);
  const stream = pipeline(input, bound.input, decoder, bound.output, (error) => settle(error));
  return { stream: stream as Readable, format, finished: () => done };
}

/**
 * A gzip member's header made the same on every machine: XFL 0 and OS 255 ("unknown") instead of the
 * level- and platform-dependent pair zlib writes (the name and mtime zlib leaves empty already).
 */
function canonicalGzipHeader(): Transform {
  let at = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (at < 10) {
        if (at <= 8 && at + chunk.length > 8) chunk[8 - at] = 0;
        if (at <= 9 && at + chunk.length > 9) chunk[9 - at] = 0xff;
      }
      at += chunk.length;
      callback(null, chunk);
    },
  });
}

type ZstdCompressing = {
  createZstdCompress?: (options: { params: Record<number, number>; chunkSize?: number }) => Duplex;
  constants: Record<string, number>;
};

/**
 * A compressing stream: gzip (default level 1, canonical header), zstd (default level 3; Node's zlib
 * from 22.15, else @cloudpss/zstd), or undefined for "none".
 */
export async function createCompressor(compression: Compression, level?: number): Promise<Duplex | undefined> {
  if (compression === "none") return undefined;
  if (compression === "gzip") {
    const gzip = zlib.createGzip({ level: level ?? 1, chunkSize: 1 << 20 });
    return Duplex.from({ writable: gzip, readable: gzip.pipe(canonicalGzipHeader()) }) as Duplex;
  }
  const chosen = level ?? 3;
  const node = zlib as unknown as ZstdCompressing;
  const levelParam = node.constants.ZSTD_c_compressionLevel;
  if (typeof node.createZstdCompress === "function" && levelParam !== undefined) {
    return node.createZstdCompress({ params: { [levelParam]: chosen }, chunkSize: 1 << 20 });
  }
  try {
    const addon = (await import("@cloudpss/zstd/napi" as string)) as { Compressor: new (level: number) => Duplex };
    return new addon.Compressor(chosen);
  } catch (error) {
    throw new InputError("zstd compression needs Node >= 22.15 or the optional dependency @cloudpss/zstd", {
      hint: "upgrade Node, reinstall ocify with optional dependencies, or use gzip",
      cause: error,
    });
  }
}
