/**
 * Bounded decompression: a layer or rootfs tarball, or a compressed image archive, whose expansion passes
 * a ratio to its compressed bytes (once past a floor) or a size is refused with one line before it fills
 * the disk. A gzip bomb expands about 1000 times; real root filesystems 2-10 times. The bounds are
 * process-wide (setDecompressionLimits; the CLI's --max-expansion-ratio and --max-expanded-size).
 */
import { Transform } from "node:stream";
import { InputError } from "./errors.js";

/** How far a compressed input may expand. */
export interface DecompressionLimits {
  /** Expanded bytes per compressed byte read so far, checked once past `floor` (default 100). */
  ratio: number;
  /** Expanded bytes in all (default 64 GiB). */
  maxSize: number;
  /** The ratio is not checked below this many expanded bytes (default 1 GiB). */
  floor: number;
}

/** The defaults: 100:1 past 1 GiB, and 64 GiB in all. */
export const defaultDecompressionLimits: Readonly<DecompressionLimits> = { ratio: 100, maxSize: 64 * 2 ** 30, floor: 2 ** 30 };

let limits: DecompressionLimits = { ...defaultDecompressionLimits };

/** Change the bounds for this process (undefined fields keep theirs). */
export function setDecompressionLimits(next: { [K in keyof DecompressionLimits]?: number | undefined }): void {
  limits = { ...limits, ...Object.fromEntries(Object.entries(next).filter(([, v]) => v !== undefined)) };
}

/** The bounds in force. */
export function decompressionLimits(): Readonly<DecompressionLimits> {
  return limits;
}

function human(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * A counter on the compressed side and a guard on the expanded side of a decoder: `input` passes the
 * compressed bytes through and counts them; `output` passes the expanded bytes and fails (refusing the
 * input with one line) once they pass the bounds. When the compressed bytes cannot be watched (a
 * decoder in another process), `compressedSize` stands for them.
 */
export function boundedExpansion(what: string, compressedSize?: number): { input: Transform; output: Transform } {
  const bound = limits;
  let compressed = compressedSize ?? 0;
  let expanded = 0;
  const input = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback) {
      if (compressedSize === undefined) compressed += chunk.length;
      callback(null, chunk);
    },
  });
  const output = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback) {
      expanded += chunk.length;
      if (expanded > bound.maxSize) {
        callback(
          new InputError(`refusing ${what}: it expands to more than ${human(bound.maxSize)}`, {
            hint: "if it is genuine, raise `decompression.maxSize`",
          }),
        );
        return;
      }
      if (expanded > bound.floor && expanded > bound.ratio * compressed) {
        callback(
          new InputError(`refusing ${what}: it expands more than ${bound.ratio} times (${human(expanded)} from ${human(compressed)})`, {
            hint: "a decompression bomb? if it is genuine, raise `decompression.ratio`",
          }),
        );
        return;
      }
      callback(null, chunk);
    },
  });
  return { input, output };
}
