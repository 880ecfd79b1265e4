/**
 * What a layer blob is (its size, compression and diffID), learnt by reading it once and remembered in
 * `<cacheDir>/layer-facts/<alg>-<hex>.json`: a blob's digest fixes its bytes, so the facts never change. A
 * Docker schema 1 image names its layers without diffIDs; converting it again (a rebuild on the same old
 * base) then reads nothing.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pipeline as pipelineCallback, Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDecompressor, detectCompression } from "./codec.js";
import { createDigester, type Digest, isDigest, parseDigest } from "./digest.js";
import { InvalidImageError, OcifyError } from "./errors.js";
import { writeFileAtomic } from "./fs-atomic.js";
import type { LayerFacts } from "./image/schema1.js";

function pathOf(cacheDir: string, digest: Digest): string {
  const { algorithm, encoded } = parseDigest(digest);
  return join(cacheDir, "layer-facts", `${algorithm}-${encoded}.json`);
}

/** The facts remembered for a blob, or undefined (unknown, or unreadable). */
export function rememberedLayerFacts(cacheDir: string, digest: Digest): LayerFacts | undefined {
  try {
    const facts = JSON.parse(readFileSync(pathOf(cacheDir, digest), "utf8")) as Partial<LayerFacts>;
    const { size, compression, diffID } = facts;
    if (!Number.isSafeInteger(size) || typeof diffID !== "string" || !isDigest(diffID)) return undefined;
    if (compression !== "gzip" && compression !== "zstd" && compression !== "none") return undefined;
    return { size: size as number, compression, diffID };
  } catch {
    return undefined;
  }
}

/** Remember a blob's facts (failing to is harmless: they are read again next time). */
export async function rememberLayerFacts(cacheDir: string, digest: Digest, facts: LayerFacts): Promise<void> {
  await writeFileAtomic(pathOf(cacheDir, digest), JSON.stringify(facts)).catch(() => {});
}

/**
 * Read a layer blob to its end: its size, its compression (by magic number) and the sha256 of the tar
 * inside. Streams; memory does not grow with the layer. `onBytes` reports the blob bytes read so far.
 */
export async function readLayerFacts(
  blob: Readable,
  what: string,
  signal?: AbortSignal,
  onBytes?: (bytes: number) => void,
): Promise<LayerFacts> {
  let size = 0;
  const counter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      onBytes?.(size);
      callback(null, chunk);
    },
  });
  // A failure of the blob (a digest mismatch found by the source) reaches the reader through the counter.
  const chunks = (pipelineCallback(blob, counter, () => {}) as Readable)[Symbol.asyncIterator]();
  const first = await chunks.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : (first.value as Buffer);
  const compression = detectCompression(head);
  const rest = Readable.from(
    (async function* () {
      yield head;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value as Buffer;
    })(),
  );
  const tar = createDigester();
  const discard = new Writable({ highWaterMark: 1 << 20, write: (_chunk, _encoding, callback) => callback() });
  const decompressor = await createDecompressor(compression);
  try {
    if (decompressor) await pipeline(rest, decompressor, tar, discard, { signal });
    else await pipeline(rest, tar, discard, { signal });
  } catch (error) {
    blob.destroy();
    if (error instanceof OcifyError || signal?.aborted) throw error;
    throw new InvalidImageError(`${what}: cannot decompress (${compression}): ${(error as Error).message}`, {
      hint: "the layer blob is corrupt",
      cause: error,
    });
  }
  return { size, compression, diffID: tar.digest };
}
