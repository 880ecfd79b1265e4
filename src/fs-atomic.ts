/**
 * Files that appear whole or not at all: write beside the target, rename on success, remove on failure.
 * A temp file's name says which process wrote it (`.NAME.<pid>-<host>-<random>.tmp`), so that a later run
 * removes those a killed run left (its process is gone), and the CLI removes its own on a forced exit.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, rmSync, type WriteStream } from "node:fs";
import { type FileHandle, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { withSystemPath } from "./errors.js";

/** A short tag of this host's name: a pid means something only on the host that wrote it. */
export const hostTag = createHash("sha256").update(hostname()).digest("hex").slice(0, 6);
/** Temp files of any writer older than this are removed too: no write of ocify stays silent for a day. */
const abandonedAfterMs = 24 * 3600_000;
const ownedTemp = /^\.(.+)\.(\d+)-([0-9a-f]{6})-[0-9a-f]+\.tmp$/;
const legacyTemp = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;

// Temp files and directories this process is writing: removed by removeLiveTempsSync() on a forced exit.
const live = new Set<string>();

/** A temporary path in the same directory as `target` (so rename is atomic), named after this process. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${ownerTag()}-${randomBytes(4).toString("hex")}.tmp`);
}

/** `<pid>-<host tag>`: what names a temp file or directory as this process's. */
export function ownerTag(): string {
  return `${process.pid}-${hostTag}`;
}

/**
 * Whether a name in a directory is what a running (or killed) ocify writer keeps there for a moment: a
 * temp file, a writer's marker or a lock (`.NAME….tmp`, `.ocify-…`, `.NAME.lock`). A directory holding only
 * these is one another ocify is filling, not the user's.
 */
export function isWriterScratch(name: string): boolean {
  return name.startsWith(".") && (name.endsWith(".tmp") || name.endsWith(".lock") || name.startsWith(".ocify-"));
}

/** Remember a temp path as this process's until untrack() (for removeLiveTempsSync). */
export function trackTemp(path: string): void {
  live.add(path);
}

/** Forget a temp path (renamed into place or removed). */
export function untrackTemp(path: string): void {
  live.delete(path);
}

/** Remove every temp file and directory this process still has (a forced exit after a signal). */
export function removeLiveTempsSync(): void {
  for (const path of live) rmSync(path, { recursive: true, force: true });
  live.clear();
}

/** Whether the process a temp name points at is gone: on this host and not running. */
export function writerIsGone(pid: number, host: string): boolean {
  if (host !== hostTag || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Remove the temp files in `dir` that killed runs left: those whose writer is gone, and any older than a
 * day. With `target`, only temp files of that name. Failures are ignored (cleaning is a courtesy).
 */
export function removeStaleTemps(dir: string, target?: string): Promise<number> {
  return removeWhere(dir, async (name, path) => {
    if (!name.endsWith(".tmp")) return false;
    const owned = ownedTemp.exec(name);
    const of = owned?.[1] ?? legacyTemp.exec(name)?.[1];
    if (of === undefined || (target !== undefined && of !== target) || live.has(path)) return false;
    if (owned !== null && writerIsGone(Number(owned[2]), owned[3] as string)) return true;
    const info = await stat(path).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > abandonedAfterMs;
  });
}

/**
 * Remove the entries of `dir` named `<prefix><pid>-<host>-…` (temp directories, spools) whose writer is
 * gone: what a killed run left in the system's temp directory or the cache.
 */
export function removeStaleOwned(dir: string, prefix: string): Promise<number> {
  return removeWhere(dir, (name) => {
    const owner = name.startsWith(prefix) ? /^(\d+)-([0-9a-f]{6})-/.exec(name.slice(prefix.length)) : null;
    return owner !== null && writerIsGone(Number(owner[1]), owner[2] as string);
  });
}

/** Remove the entries of `dir` that `stale` picks; returns how many went. */
async function removeWhere(dir: string, stale: (name: string, path: string) => boolean | Promise<boolean>): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    if (!(await stale(name, path))) continue;
    const gone = await rm(path, { recursive: true, force: true }).then(
      () => true,
      () => false,
    );
    if (gone) removed++;
  }
  return removed;
}

/**
 * mkdir -p. Where a recursive mkdir says only ENOENT (a parent it could not create: a read-only or
 * forbidden file system), the first missing directory is created alone, which fails with the reason.
 */
export async function makeDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    let missing = path;
    while (
      dirname(missing) !== missing &&
      !(await stat(dirname(missing)).then(
        () => true,
        () => false,
      ))
    )
      missing = dirname(missing);
    await mkdir(missing);
    throw error;
  }
}

/** Write bytes to `target` atomically: one buffer or string, or pieces written one after the other (no copy joins them). */
export function writeFileAtomic(target: string, data: Uint8Array | string | readonly Uint8Array[]): Promise<void> {
  return withSystemPath(target, async () => {
    await makeDirectory(dirname(target));
    const temp = tempPathFor(target);
    trackTemp(temp);
    await settleTemp(temp, async () => {
      await writeFile(temp, data);
      await rename(temp, target);
    });
  });
}

/** Run `fn` (which renames `temp` into place); on failure `temp` is removed; either way it is no longer this process's. */
async function settleTemp(temp: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  } finally {
    untrackTemp(temp);
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
  await makeDirectory(dirname(target));
  const temp = tempPathFor(target);
  trackTemp(temp);
  const stream = createWriteStream(temp, { flags: "wx", highWaterMark: 1 << 20 });
  let done = false;
  return {
    path: temp,
    stream,
    async commit() {
      if (done) return;
      done = true;
      await settleTemp(temp, () => rename(temp, target));
    },
    async abort() {
      if (done) return;
      done = true;
      // The stream opens its file on the thread pool: removed before that open ends, the file would be
      // made after its removal and left behind. Wait until the stream has closed it.
      if (!stream.closed) {
        const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
        stream.destroy();
        await closed;
      }
      await rm(temp, { force: true });
      untrackTemp(temp);
    },
  };
}

/**
 * Write every byte of `buffers` at `position`: a short write (a disk filling up) is followed by one for
 * the rest, which then fails with the reason (ENOSPC) instead of leaving a hole.
 */
export async function writevFully(handle: FileHandle, buffers: Buffer[], position: number, length: number): Promise<void> {
  const { bytesWritten } = await handle.writev(buffers, position);
  if (bytesWritten >= length) return;
  const rest = Buffer.concat(buffers).subarray(bytesWritten);
  for (let offset = 0; offset < rest.length; ) {
    const written = await handle.write(rest, offset, rest.length - offset, position + bytesWritten + offset);
    offset += written.bytesWritten;
  }
}
