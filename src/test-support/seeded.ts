/** Seeded fixtures for the reliability tests: incompressible bytes that are the same on every run. */
import { createCipheriv } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";

/** `size` pseudo-random bytes from `seed` (an AES-CTR keystream), written to `path` 1 MiB at a time. */
export function writeSeededFile(path: string, size: number, seed: number): void {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(1 << 20);
  const fd = openSync(path, "w");
  try {
    for (let left = size; left > 0; left -= zeros.length) writeSync(fd, cipher.update(zeros.subarray(0, Math.min(left, zeros.length))));
  } finally {
    closeSync(fd);
  }
}

/** Seeded bytes in memory (small fixtures). */
export function seededBuffer(size: number, seed: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16, 0)).update(Buffer.alloc(size));
}
