/**
 * An exclusive lock between ocify processes: a file created with O_EXCL holding its owner
 * (`<pid>-<host tag>`). A lock whose owner is gone (a killed run on this host) is broken; one held longer
 * than the wait is reported as one line naming the file. Used for read-modify-write of an OCI layout's
 * index.json, so that two builds adding tags at once both keep theirs.
 */
import { randomBytes } from "node:crypto";
import { link, open, readFile, rename, rm } from "node:fs/promises";
import { InputError } from "./errors.js";
import { ownerTag, writerIsGone } from "./fs-atomic.js";

/** Options of withFileLock. */
export interface FileLockOptions {
  /** How long to wait for another holder (default 120 s). */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** What is locked, for the message when the wait is over. */
  what: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function tryAcquire(path: string, owner: string): Promise<boolean> {
  try {
    const handle = await open(path, "wx");
    try {
      await handle.writeFile(owner);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

/**
 * Break the lock when its owner is gone. It is moved aside first and its owner read again, so that a
 * lock taken by a live process in between is put back, not lost.
 */
async function breakIfStale(path: string): Promise<void> {
  const owner = await readFile(path, "utf8").catch(() => undefined);
  const match = owner === undefined ? null : /^(\d+)-([0-9a-f]{6})$/.exec(owner);
  if (!match || !writerIsGone(Number(match[1]), match[2] as string)) return;
  const aside = `${path}.${randomBytes(4).toString("hex")}.stale`;
  if (
    !(await rename(path, aside).then(
      () => true,
      () => false,
    ))
  )
    return;
  if ((await readFile(aside, "utf8").catch(() => undefined)) !== owner) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
}

/** Run `fn` holding the lock file `path`; the lock is removed afterwards, whatever `fn` does. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: FileLockOptions): Promise<T> {
  const owner = ownerTag();
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (let attempt = 0; !(await tryAcquire(path, owner)); attempt++) {
    options.signal?.throwIfAborted();
    if (attempt % 8 === 0) await breakIfStale(path);
    if (Date.now() > deadline) {
      const holder = await readFile(path, "utf8").catch(() => "?");
      throw new InputError(`${options.what} is locked by another ocify process (${holder}) for too long`, {
        hint: `wait for it to finish; if no ocify is running, remove ${path}`,
      });
    }
    await sleep(10 + Math.random() * Math.min(200, 10 * 2 ** Math.min(attempt, 5)));
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
