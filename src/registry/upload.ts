/**
 * Blob uploads that survive a cut and a kill. A blob that fits one chunk goes in one request (a PUT, or
 * one streamed PATCH); a larger one as a series of PATCH requests, each a chunk (distribution-spec end-5,
 * `Content-Range`; never smaller than the registry's `OCI-Chunk-Min-Length`). After each chunk the session
 * URL and the offset the registry confirmed are kept in `<cache>/uploads/`, so that a run killed midway,
 * run again, asks the registry where the session stands (its `Range`) and sends only the rest. A failed
 * request is retried (retry.ts): the session's offset is asked for and the upload goes on from there, or
 * from a new session when the registry lost it (distribution drops a session whose PATCH was cut mid-body;
 * behind a buffering proxy such as nginx, the cut request never reaches it and the session stays).
 */
import { createHash } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { crc32 } from "node:zlib";
import { shortDigest } from "../digest.js";
import { SizeMismatchError } from "../errors.js";
import { writeFileAtomic } from "../fs-atomic.js";
import type { Descriptor } from "../image/descriptor.js";
import type { RegistryClient, UploadSession } from "./client.js";
import { RegistryError } from "./errors.js";
import { isRetryableError, RetryBudget, retryReason } from "./retry.js";

/** The chunk size when none is given: see docs/reliability.md for how it was measured. */
export const defaultChunkSize = 512 << 20;
/** Kept sessions older than this are not resumed (registries purge idle sessions). */
const sessionLifetimeMs = 24 * 3600_000;

/** A session as kept across runs. */
interface SavedSession {
  url: string;
  offset: number;
  minChunk: number;
  /**
   * A fingerprint of the bytes [0, offset) (`crc32:` and their CRC-32), for a streamed blob whose digest is
   * not known yet: see Fingerprint.
   */
  prefix?: string | undefined;
  savedAt: number;
}

/** Upload sessions kept across processes, one file per blob (or per layer being built) and repository. */
export class UploadStore {
  constructor(readonly dir: string) {}

  #path(key: string): string {
    return join(this.dir, `${createHash("sha256").update(key).digest("hex")}.json`);
  }

  /** The session kept under `key`, unless it is missing, unreadable or too old. */
  async load(key: string): Promise<SavedSession | undefined> {
    try {
      const saved = JSON.parse(await readFile(this.#path(key), "utf8")) as SavedSession;
      if (typeof saved.url !== "string" || !Number.isSafeInteger(saved.offset) || Date.now() - saved.savedAt > sessionLifetimeMs) {
        await this.remove(key);
        return undefined;
      }
      return saved;
    } catch {
      return undefined;
    }
  }

  /** Keep a session (failing to is harmless: the next run starts a new one). */
  async save(key: string, session: UploadSession, prefix?: string): Promise<void> {
    const saved: SavedSession = { url: session.url.href, offset: session.offset, minChunk: session.minChunk, prefix, savedAt: Date.now() };
    await writeFileAtomic(this.#path(key), JSON.stringify(saved)).catch(() => {});
  }

  async remove(key: string): Promise<void> {
    await rm(this.#path(key), { force: true });
  }

  /** Remove kept sessions older than their lifetime (cache prune). */
  async removeStale(): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const info = await stat(join(this.dir, name)).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > sessionLifetimeMs) await rm(join(this.dir, name), { force: true });
    }
  }
}

/** What an upload needs beside its bytes. */
export interface UploadContext {
  client: RegistryClient;
  repository: string;
  scopes: readonly string[];
  /** For messages and retry lines. */
  what: string;
  signal?: AbortSignal | undefined;
  chunkSize: number;
  store?: UploadStore | undefined;
  /** A session opened ahead (a spare, or one a refused mount opened). */
  opened?: UploadSession | undefined;
}

/** The key a blob's kept session is found under. */
export function blobUploadKey(context: UploadContext, digest: string): string {
  return `${context.client.registry}/${context.repository}@${digest}`;
}

/** Take successive parts of at most N bytes from one stream, each part a stream of its own. */
export class Segments {
  readonly #source: AsyncIterator<Buffer>;
  #left: Buffer | undefined;
  #done = false;

  constructor(source: Readable) {
    this.#source = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Whether the stream has no byte left (reads ahead one chunk to know). */
  async ended(): Promise<boolean> {
    if (this.#left?.length || this.#done) return !this.#left?.length;
    const next = await this.#source.next();
    if (next.done) this.#done = true;
    else this.#left = next.value;
    return this.#done;
  }

  /** The next part: up to `max` bytes; `onBytes` hears each piece as it goes. */
  part(max: number, onBytes?: (chunk: Buffer) => void): Readable {
    const self = this;
    async function* take(): AsyncGenerator<Buffer> {
      let taken = 0;
      while (taken < max) {
        let chunk = self.#left;
        self.#left = undefined;
        if (!chunk) {
          if (self.#done) return;
          const next = await self.#source.next();
          if (next.done) {
            self.#done = true;
            return;
          }
          chunk = next.value;
        }
        if (chunk.length > max - taken) {
          self.#left = chunk.subarray(max - taken);
          chunk = chunk.subarray(0, max - taken);
        }
        taken += chunk.length;
        onBytes?.(chunk);
        yield chunk;
      }
    }
    return Readable.from(take(), { objectMode: false, highWaterMark: 1 << 20 });
  }

  /** Stop reading the stream. */
  async close(): Promise<void> {
    await this.#source.return?.();
  }
}

function chunkFor(context: UploadContext, session: UploadSession): number {
  return Math.max(context.chunkSize, session.minChunk);
}

async function newSession(context: UploadContext): Promise<UploadSession> {
  const opened = context.opened;
  context.opened = undefined;
  return opened ?? context.client.openUploadSession(context.repository, context.scopes, context.signal);
}

/**
 * Where a session kept by an earlier run stands: the registry's offset when it still has the session and
 * `accept` takes it; otherwise the session is cancelled and forgotten.
 */
async function resumeSaved(context: UploadContext, key: string, accept: (saved: SavedSession, offset: number) => boolean) {
  const saved = await context.store?.load(key);
  if (!saved) return undefined;
  const kept: UploadSession = { url: new URL(saved.url), offset: saved.offset, minChunk: saved.minChunk };
  const status = await context.client.uploadStatus(kept, context.scopes, context.signal).catch(() => undefined);
  if (status && accept(saved, status.offset)) return { session: status, saved };
  if (status) await context.client.cancelUpload(status.url, context.scopes);
  await context.store?.remove(key);
  return undefined;
}

/**
 * Upload a blob of known digest and size. `open(offset)` gives its bytes from `offset` on (again, after a
 * failure). A blob no larger than a chunk goes in one PUT; a larger one in chunks, kept for resuming.
 */
export async function uploadBlob(
  descriptor: Pick<Descriptor, "digest" | "size">,
  open: (offset: number) => Promise<Readable>,
  context: UploadContext,
): Promise<void> {
  const key = blobUploadKey(context, descriptor.digest);
  const budget = new RetryBudget(
    `uploading ${shortDigest(descriptor.digest)} to ${context.client.registry}/${context.repository}`,
    context.signal,
  );
  const resumed = await resumeSaved(context, key, (_saved, offset) => offset <= descriptor.size);
  let session = resumed?.session ?? (await newSession(context));
  const oneRequest = !resumed && descriptor.size <= chunkFor(context, session);
  for (;;) {
    try {
      if (oneRequest) {
        await context.client.putBlob(session.url, descriptor, await open(0), context.scopes, "", context.signal);
        return;
      }
      await sendChunks(descriptor, open, session, context, key, budget, (next) => {
        session = next;
      });
      await finish(session, descriptor, context, [key]);
      return;
    } catch (error) {
      if ((!isRetryableError(error) && !isLostSession(error)) || !(await budget.next(retryReason(error)))) {
        // A session of chunks stays, kept for the next run; one of a single request is of no use to it.
        if (oneRequest || !context.store) await context.client.cancelUpload(session.url, context.scopes);
        throw error;
      }
      const where = await context.client.uploadStatus(session, context.scopes, context.signal).catch(() => undefined);
      if (where && !oneRequest) {
        session = where;
        continue;
      }
      // One request cut, or the session lost: the blob may be there all the same; else a new session.
      if (await context.client.hasBlob(context.repository, descriptor, context.scopes, context.signal).catch(() => false)) {
        await context.store?.remove(key);
        return;
      }
      if (where) await context.client.cancelUpload(where.url, context.scopes);
      session = await newSession(context);
    }
  }
}

/** The chunks from the session's offset to the end, each confirmed and kept before the next. */
async function sendChunks(
  descriptor: Pick<Descriptor, "digest" | "size">,
  open: (offset: number) => Promise<Readable>,
  start: UploadSession,
  context: UploadContext,
  key: string,
  budget: RetryBudget,
  onConfirmed: (session: UploadSession) => void,
): Promise<void> {
  let session = start;
  if (session.offset >= descriptor.size) return;
  const segments = new Segments(await open(session.offset));
  try {
    while (session.offset < descriptor.size) {
      const length = Math.min(chunkFor(context, session), descriptor.size - session.offset);
      const body = segments.part(length);
      const expected = session.offset + length;
      session = await context.client.patchUpload(session, body, length, () => length, context.scopes, "", context.signal);
      if (session.offset !== expected) {
        throw new RegistryError("BLOB_UPLOAD_INVALID", `${budget.what}: the registry holds ${session.offset} bytes, not ${expected}`, {
          hint: "retry",
        });
      }
      onConfirmed(session);
      await context.store?.save(key, session);
      budget.progress();
    }
  } finally {
    await segments.close();
  }
}

/** Close the session with the digest; a close whose answer was lost is found done by asking for the blob. */
async function finish(
  session: UploadSession,
  descriptor: Pick<Descriptor, "digest" | "size">,
  context: UploadContext,
  keys: readonly string[],
): Promise<void> {
  try {
    await context.client.finishUpload(session, descriptor.digest, context.scopes, "", context.signal);
  } catch (error) {
    if (!(await context.client.hasBlob(context.repository, descriptor, context.scopes, context.signal).catch(() => false))) throw error;
  }
  for (const key of keys) await context.store?.remove(key);
}

/**
 * Whether a streamed upload that failed this way can be finished from the blob's bytes once they are
 * built (copy.ts): a network failure, or a session lost or not matching the bytes made now.
 */
export function isResumableUploadFailure(error: unknown): boolean {
  return isRetryableError(error) || isLostSession(error);
}

/** Whether the registry forgot or refused the session (a new one may do). */
function isLostSession(error: unknown): boolean {
  return (
    error instanceof RegistryError && (error.code === "BLOB_UPLOAD_UNKNOWN" || error.code === "BLOB_UPLOAD_INVALID" || error.status === 416)
  );
}

/**
 * Upload a blob while it is produced (its digest known at the end): streamed PATCH parts of a chunk each,
 * the registry's offset and a fingerprint of the bytes before it kept after each part, so that a rerun that
 * makes the same bytes skips what the registry holds. A failure here is not retried (the bytes sent are
 * gone): it rejects with the session and what the registry confirmed, which the caller continues with the
 * blob's bytes from the cache (uploadBlob with `context.opened`).
 */
export async function uploadStream(
  content: Readable,
  final: Promise<Pick<Descriptor, "digest" | "size">>,
  context: UploadContext,
  key: string | undefined,
): Promise<void> {
  const fingerprint = new Fingerprint();
  const segments = new Segments(content);
  // Kept under the layer's key while the digest is unknown, and under the blob's too once it is known: a
  // rerun that finds the layer built pushes it as a known blob and finds the session there.
  const keys = key === undefined ? [] : [key];
  final.then(
    (descriptor) => keys.push(blobUploadKey(context, descriptor.digest)),
    () => {},
  );
  let session: UploadSession | undefined;
  try {
    const resumed =
      key === undefined
        ? undefined
        : await resumeSaved(context, key, (saved, offset) => saved.prefix?.startsWith("crc32:") === true && offset === saved.offset);
    session = resumed?.session ?? (await newSession(context));
    if (resumed) await skipKnown(segments, fingerprint, resumed.saved);
    session = await sendParts(segments, fingerprint, session, context, keys);
    const descriptor = await final;
    if (session.offset !== descriptor.size) throw new SizeMismatchError(context.what, descriptor.size, session.offset);
    await finish(session, descriptor, context, keys);
  } catch (error) {
    throw new StreamedUploadError(error, session, keys);
  } finally {
    await segments.close();
  }
}

/**
 * What a streamed upload keeps of the bytes it sent, to know them again after a kill: their CRC-32. The
 * layer engine hashes the blob with sha256 already, and a second sha256 here cost a core ~0.4 s per
 * 473 MiB; a CRC-32 costs a tenth of that. A match is then only likely, not certain, but nothing rests on
 * it: the registry checks the whole blob against its sha256 digest when the upload is finished.
 */
class Fingerprint {
  #crc = 0;

  update(chunk: Buffer): void {
    this.#crc = crc32(chunk, this.#crc);
  }

  get value(): string {
    return `crc32:${(this.#crc >>> 0).toString(16).padStart(8, "0")}`;
  }
}

/** The bytes a killed run sent already: read (not sent) and checked against the fingerprint kept with the session. */
async function skipKnown(segments: Segments, fingerprint: Fingerprint, saved: SavedSession): Promise<void> {
  for await (const _ of segments.part(saved.offset, (chunk) => fingerprint.update(chunk))) {
    // read through
  }
  if (fingerprint.value !== saved.prefix) {
    throw new RegistryError("BLOB_UPLOAD_INVALID", "the bytes made now are not those the earlier run sent");
  }
}

async function sendParts(
  segments: Segments,
  fingerprint: Fingerprint,
  start: UploadSession,
  context: UploadContext,
  keys: readonly string[],
): Promise<UploadSession> {
  let session = start;
  while (!(await segments.ended())) {
    let sent = 0;
    const body = segments.part(chunkFor(context, session), (chunk) => {
      sent += chunk.length;
      fingerprint.update(chunk);
    });
    const expected = session.offset;
    session = await context.client.patchUpload(session, body, undefined, () => sent, context.scopes, "", context.signal);
    if (session.offset !== expected + sent) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", `${context.what}: the registry holds ${session.offset} bytes, not ${expected + sent}`);
    }
    for (const key of keys) await context.store?.save(key, session, fingerprint.value);
  }
  return session;
}

/** A streamed upload that failed: the session and its confirmed offset, to go on with from the cache. */
export class StreamedUploadError extends Error {
  constructor(
    readonly failure: unknown,
    readonly session: UploadSession | undefined,
    /** The keys the session is kept under (forgotten when the session is given up). */
    readonly keys: readonly string[],
  ) {
    super((failure as Error)?.message ?? String(failure), { cause: failure });
  }
}

/** A stream of `source` from byte `offset` on (the bytes before are read and dropped). */
export function skipBytes(source: Readable, offset: number): Readable {
  if (offset === 0) return source;
  async function* rest(): AsyncGenerator<Buffer> {
    let skip = offset;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      yield skip > 0 ? chunk.subarray(skip) : chunk;
      skip = 0;
    }
  }
  return Readable.from(rest(), { objectMode: false, highWaterMark: 1 << 20 });
}
