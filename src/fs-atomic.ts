/** Files that appear whole or not at all: write beside the target, rename on success, remove on failure. */
import { randomBytes } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** A temporary path in the same directory as `target` (so rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Write bytes to `target` atomically. */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  try {
    await writeFile(temp, data);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** A write stream to a temp file that becomes `target` on commit() and disappears on abort(). */
export interface AtomicFile {
  readonly path: string;
  readonly stream: WriteStream;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** Open a temp file beside `target` for streaming writes. */
export async function openAtomicFile(target: string): Promise<AtomicFile> {
  await mkdir(dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  const stream = createWriteStream(temp, { flags: "wx", highWaterMark: 1 << 20 });
  let done = false;
  return {
    path: temp,
    stream,
    async commit() {
      if (done) return;
      done = true;
      await rename(temp, target);
    },
    async abort() {
      if (done) return;
      done = true;
      stream.destroy();
      await rm(temp, { force: true });
    },
  };
}
