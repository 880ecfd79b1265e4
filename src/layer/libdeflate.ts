/**
 * libdeflate's raw deflate compressor (the `libdeflate` package's WebAssembly module), used directly and
 * wrapped into a gzip member here. The package's own `gzip()` makes a compressor and two heap buffers per
 * call, which grows the module's memory block after block (~35 MiB per thread). Here one compressor and
 * one input and output buffer are kept for the life of the Deflater. The member's CRC-32 is Node's native
 * `zlib.crc32`, not the module's: in WebAssembly it was ~11% of the time a block took to compress. The
 * bytes are the same as the module's own gzip wrapper gives, with the header ocify writes everywhere
 * (compression.ts); a libdeflate compressor keeps no state from one call to the next. Used by the
 * compressing threads (deflate-worker.ts) and, for small blocks, on the main thread.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { crc32 } from "node:zlib";

interface Module {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _libdeflate_alloc_compressor(level: number): number;
  _libdeflate_deflate_compress_bound(compressor: number, size: number): number;
  _libdeflate_deflate_compress(compressor: number, input: number, size: number, output: number, room: number): number;
}

/**
 * A member's fixed header (RFC 1952): deflate, no flags, no mtime, no extra flags, OS "unknown". The
 * same bytes whatever the level or machine (compression.ts writes it for zlib's members too).
 */
const header = Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff);
const headerSize = header.length;
const trailerSize = 8;

/** One compressor and its buffers in the module's memory. */
export class Deflater {
  readonly #module: Module;
  readonly #compressor: number;
  #input = 0;
  #inputRoom = 0;
  #output = 0;
  #outputRoom = 0;

  constructor(module: Module, level: number) {
    this.#module = module;
    this.#compressor = module._libdeflate_alloc_compressor(level);
    if (this.#compressor === 0) throw new Error(`libdeflate refused level ${level}`);
  }

  /** One gzip member of `data`. */
  gzip(data: Uint8Array): Uint8Array {
    const module = this.#module;
    if (this.#input === 0 || data.length > this.#inputRoom) {
      if (this.#input) module._free(this.#input);
      this.#inputRoom = Math.max(data.length, 1);
      this.#input = module._malloc(this.#inputRoom);
    }
    const bound = module._libdeflate_deflate_compress_bound(this.#compressor, data.length);
    if (this.#output === 0 || bound > this.#outputRoom) {
      if (this.#output) module._free(this.#output);
      this.#outputRoom = bound;
      this.#output = module._malloc(bound);
    }
    if (this.#input === 0 || this.#output === 0) throw new Error("libdeflate could not allocate its buffers");
    // HEAPU8 is replaced when the memory grows: read it after every allocation.
    module.HEAPU8.set(data, this.#input);
    const written = module._libdeflate_deflate_compress(this.#compressor, this.#input, data.length, this.#output, this.#outputRoom);
    if (written === 0) throw new Error("libdeflate could not compress a block");
    const member = new Uint8Array(headerSize + written + trailerSize);
    member.set(header);
    member.set(module.HEAPU8.subarray(this.#output, this.#output + written), headerSize);
    const trailer = new DataView(member.buffer, headerSize + written, trailerSize);
    trailer.setUint32(0, crc32(data), true);
    trailer.setUint32(4, data.length % 2 ** 32, true);
    return member;
  }
}

/** The package's emscripten module, found beside its entry point (its exports name only the entry point). */
async function loadModule(): Promise<Module> {
  const entry = createRequire(import.meta.url).resolve("libdeflate");
  const create = (await import(pathToFileURL(join(dirname(entry), "dist", "libdeflate.wasm.mjs")).href)) as { default: () => Module };
  return create.default();
}

/** A Deflater at `level`, its module loaded. */
export async function loadDeflater(level: number): Promise<Deflater> {
  return new Deflater(await loadModule(), level);
}
