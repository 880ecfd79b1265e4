/**
 * Stream codecs for layers: gzip and zstd told apart by their magic numbers, a decompressing stream for
 * each (zstd from Node's zlib on Node >= 22.15, else the optional @cloudpss/zstd addon, else the `zstd`
 * command), and a compressing one. The layer engine compresses in blocks on threads of its own
 * (layer/compression.ts); these are for a layer that arrives as one stream.
 */
import { spawn } from "node:child_process";
import { Duplex, Transform } from "node:stream";
import * as zlib from "node:zlib";
import { InputError, InvalidImageError } from "./errors.js";
import type { Compression } from "./media-types.js";

/** The compression a blob starts with (gzip and zstd by their magic numbers), else "none". */
export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

type ZstdZlib = { createZstdDecompress?: (options?: { chunkSize?: number }) => Duplex };

/**
 * A decompressing stream for a layer: Node's zlib (zstd from Node 22.15), else the optional
 * @cloudpss/zstd addon, else the `zstd -dc` command.
 */
export async function createDecompressor(compression: Compression): Promise<Duplex | undefined> {
  if (compression === "none") return undefined;
  if (compression === "gzip") return zlib.createGunzip({ chunkSize: 1 << 20 });
  const native = (zlib as unknown as ZstdZlib).createZstdDecompress;
  if (typeof native === "function") return native({ chunkSize: 1 << 20 });
  try {
    const addon = (await import("@cloudpss/zstd")) as { Decompressor?: new () => Duplex };
    if (addon.Decompressor) return new addon.Decompressor();
  } catch {
    // optional dependency absent: fall through to the command
  }
  const child = spawn("zstd", ["-dcq"], { stdio: ["pipe", "pipe", "ignore"] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on("error", (error) =>
    duplex.destroy(
      new InvalidImageError(`cannot decompress a zstd layer: ${error.message}`, { hint: "install zstd or use Node >= 22.15" }),
    ),
  );
  child.on("exit", (code) => {
    if (code !== 0) duplex.destroy(new InvalidImageError(`zstd -d failed with exit code ${code}`, { hint: "the layer is not valid zstd" }));
  });
  return duplex;
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
