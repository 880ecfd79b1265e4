/**
 * The content-addressed blob cache: an OCI-layout-shaped `blobs/<alg>/<hex>` store under
 * `$XDG_CACHE_HOME/ocify` (default `~/.cache/ocify`). Entries are written to a temp file and renamed
 * once their digest is verified, so a present entry is always whole; reads verify again while streaming.
 */
import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { touchCacheEntry } from "./cache-prune.js";
import { createVerifier, type Digest, Digester, parseDigest, verifyBytes } from "./digest.js";
import { DigestMismatchError, OcifyError, type OcifyErrorOptions, SizeMismatchError, withSystemPath } from "./errors.js";
import { makeDirectory, openAtomicFile, tempPathFor, trackTemp, untrackTemp } from "./fs-atomic.js";
import type { Descriptor } from "./image/descriptor.js";

/** A cache entry found damaged while it was read: the caller rebuilds or fetches it again. */
export class CacheDamagedError extends OcifyError {
  constructor(message: string, options: OcifyErrorOptions = {}) {
    super("CACHE_DAMAGED", message, { hint: "the cache was damaged; the entry is made again", ...options });
  }
}

/** Whether a stream failed because what it read was not what its descriptor says (a damaged copy). */
export function isDamagedContent(error: unknown): boolean {
  return error instanceof CacheDamagedError || error instanceof DigestMismatchError || error instanceof SizeMismatchError;
}

/** The cache directory: $OCIFY_CACHE_DIR, else $XDG_CACHE_HOME/ocify, else ~/.cache/ocify. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OCIFY_CACHE_DIR) return env.OCIFY_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "ocify");
}

/** A content-addressed store of verified blobs. */
export class BlobCache {
  constructor(readonly dir: string = defaultCacheDir()) {}

  /** The path an entry lives at. */
  path(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.dir, "blobs", algorithm, encoded);
  }

  /** Whether a whole entry of the descriptor's size is present. */
  async has(descriptor: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    try {
      const info = await stat(this.path(descriptor.digest));
      return info.isFile() && info.size === descriptor.size;
    } catch {
      return false;
    }
  }

  /** Stream an entry, verified against the descriptor while it is read. */
  open(descriptor: Pick<Descriptor, "digest" | "size">, what = `cached blob ${descriptor.digest}`): Readable {
    const path = this.path(descriptor.digest);
    void touchCacheEntry(path);
    const verifier = createVerifier(descriptor, what);
    const file = createReadStream(path, { highWaterMark: 1 << 20 });
    // Gone since has() (pruned by another process) or unreadable: damaged, so the caller fetches it again.
    file.once("error", (error: NodeJS.ErrnoException) => verifier.destroy(new CacheDamagedError(`${what} cannot be read (${error.code})`)));
    return file.pipe(verifier) as Readable;
  }

  /**
   * A small entry (a config) read at once and checked; undefined when it is absent or damaged. One
   * synchronous read of a few KiB costs less than a stream's round trips through libuv's pool.
   */
  readSmall(descriptor: Pick<Descriptor, "digest" | "size">, what = `cached blob ${descriptor.digest}`): Buffer | undefined {
    try {
      const bytes = readFileSync(this.path(descriptor.digest));
      verifyBytes(bytes, descriptor, what);
      void touchCacheEntry(this.path(descriptor.digest));
      return bytes;
    } catch {
      return undefined;
    }
  }

  /** Remove an entry (found damaged), so that the next open fetches it again. */
  async remove(descriptor: Pick<Descriptor, "digest">): Promise<void> {
    await rm(this.path(descriptor.digest), { force: true });
  }

  /** Store a stream under the descriptor's digest, verifying it; nothing is left behind on failure. */
  async store(descriptor: Pick<Descriptor, "digest" | "size">, content: Readable, what = `blob ${descriptor.digest}`): Promise<void> {
    const target = this.path(descriptor.digest);
    await withSystemPath(this.dir, async () => {
      await makeDirectory(join(this.dir, "blobs"));
      const file = await openAtomicFile(target);
      try {
        await pipeline(content, createVerifier(descriptor, what), file.stream);
        await file.commit();
      } catch (error) {
        await file.abort();
        throw error;
      }
    });
  }

  /**
   * Store a stream whose digest is not known yet: it is written to a temp file, hashed on the way, and
   * renamed under its digest at the end. Returns the digest and size.
   */
  async storeNew(content: Readable): Promise<{ digest: Digest; size: number }> {
    await withSystemPath(this.dir, () => makeDirectory(join(this.dir, "blobs", "sha256")));
    const temp = tempPathFor(join(this.dir, "blobs", "sha256", "new"));
    const digester = new Digester();
    trackTemp(temp);
    try {
      await pipeline(content, digester, createWriteStream(temp, { flags: "wx", highWaterMark: 1 << 20 }));
      await rename(temp, this.path(digester.digest));
      return { digest: digester.digest, size: digester.size };
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    } finally {
      untrackTemp(temp);
    }
  }
}
