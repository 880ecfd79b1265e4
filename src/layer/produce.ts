/**
 * Producing a layer's blob from its plan: each block of the tar is taken from the block cache (on trust
 * when the previous build's key and no racy file say it is the same, else after comparing it with the
 * block's fresh bytes) or compressed now, and the blob's digest is computed as the blocks go by, in order,
 * while a consumer (an upload) may receive them. See docs/layer-engine.md.
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { Digest } from "../digest.js";
import { noProgress, type ProgressSink } from "../progress.js";
import { type BlockCache, type BlockInfo, type CachedBlock, sameBlock } from "./block-cache.js";
import { type BlockKeys, blockKeys, blockStart, type PackedPlan, type ProducedBlock } from "./blocks.js";
import { type BlockCodec, gzipTrailer } from "./compression.js";
import { GarbageNudge } from "./garbage.js";
import { isRacy, type Previous } from "./prepare.js";
import { type BlockSource, decoupledSource, inlineSource, producerMode, window, workerSource } from "./sources.js";
import { TeeFeed } from "./tee-feed.js";

/** What produce() needs besides the plan. */
export interface ProduceOptions {
  signal?: AbortSignal | undefined;
  progress?: ProgressSink | undefined;
  /** Receives the blob as it is produced (not when its blocks are the previous build's). */
  tee?: ((content: import("node:stream").Readable) => Promise<void>) | undefined;
  producer?: "worker" | "inline" | undefined;
  /** Collect garbage after every 16 MiB of compressed output while V8's heap is small (garbage.ts); default true. */
  garbageNudges?: boolean | undefined;
}

/** A layer's blob as produced. */
export interface Produced {
  /** Every block key is the recorded build's. */
  same: boolean;
  diffID: Digest;
  digest: Digest;
  size: number;
  blocks: BlockInfo[];
  /** Blocks taken from the cache, and of those, on trust. */
  reused: number;
  trusted: number;
  /** Blocks whose bytes for the diffID were unpacked from the cache, not read from the files. */
  unpacked: number;
}

/** One block done: its cache record and compressed bytes, and where they came from. */
interface Finished {
  index: number;
  info: BlockInfo;
  chunks: readonly Buffer[];
  /** Compressed now, or taken from the cache after comparing it with the block's bytes, or on trust. */
  from: "compressed" | "verified" | "trusted";
}

/** Whether a cached block was made from exactly these bytes: its recorded CRC-32 and size (and a gzip trailer) against the fresh block's. */
function cachedBlockMatches(codec: BlockCodec, cached: { info: BlockInfo; data: Buffer }, block: ProducedBlock): boolean {
  if (cached.info.usize !== block.data.length) return false;
  const crc = crc32(block.data) >>> 0;
  if (cached.info.ucrc !== crc) return false;
  if (codec.compression === "gzip") {
    const trailer = gzipTrailer(cached.data);
    return trailer !== undefined && trailer.crc === crc && trailer.size === block.data.length % 2 ** 32;
  }
  if (codec.compression === "none") return cached.info.ccrc === crc && cached.info.csize === cached.info.usize;
  return true;
}

/**
 * The blocks of the previous build of this layer that can be taken as they are: same key (same headers,
 * change detectors and ranges) and no file in them racy against that build's listing. The same rule that
 * lets an unchanged layer be reused whole, applied to each block: the content is not compared again.
 */
function trustedBlocks(previous: Previous | undefined, keys: BlockKeys): Map<string, BlockInfo> {
  const trusted = new Map<string, BlockInfo>();
  if (!previous) return trusted;
  const wanted = new Set(keys.keys.filter((_, i) => !keys.racy[i]));
  for (const block of previous.blocks) if (wanted.has(block.key)) trusted.set(block.key, block);
  return trusted;
}

/** Turns each produced block into its compressed member: from the cache when it may be, else compressed now. */
class Blocks {
  readonly keys: string[];
  readonly trusted: Map<string, BlockInfo>;
  /** Every key is the previous build's: most likely the same blob, which the destination then has. */
  readonly same: boolean;
  /** Cached blocks checked ahead, when the source hands them out without their bytes. */
  readonly #onTrust = new Map<number, CachedBlock>();
  source: BlockSource | undefined;

  constructor(
    readonly packed: PackedPlan,
    readonly codec: BlockCodec,
    readonly cache: BlockCache,
    previous: Previous | undefined,
  ) {
    const scanStartNs = previous ? BigInt(previous.scanStartNs) : 0n;
    const keyed = blockKeys(packed, codec.id, previous && ((mtimeNs) => isRacy(mtimeNs, scanStartNs)));
    this.keys = keyed.keys;
    this.trusted = trustedBlocks(previous, keyed);
    this.same =
      previous !== undefined && previous.blocks.length === this.keys.length && previous.blocks.every((b, i) => b.key === this.keys[i]);
  }

  /** Bytes of the blocks that are not taken on trust, so may need compressing. */
  toCompress(): number {
    let total = 0;
    for (const [i, key] of this.keys.entries())
      if (!this.trusted.has(key)) total += (this.packed.cuts[i] as number) - blockStart(this.packed, i);
    return total;
  }

  /** Whether block `index` needs its bytes read (a block taken on trust, found whole in the cache, does not). */
  needsData(index: number): boolean {
    const key = this.keys[index] as string;
    const info = this.trusted.get(key);
    const cached = info && this.cache.readNow(key);
    if (!cached || !sameBlock(info, cached.info)) return true;
    this.#onTrust.set(index, cached);
    return false;
  }

  /** The block as a compressed member: taken from the cache (trusted, or verified against its bytes), or compressed now and cached. */
  async finish(block: ProducedBlock): Promise<Finished> {
    const source = this.source as BlockSource;
    const key = this.keys[block.index] as string;
    const early = this.#onTrust.get(block.index);
    if (early) {
      this.#onTrust.delete(block.index);
      return { index: block.index, info: early.info, chunks: [early.data], from: "trusted" };
    }
    const cached = this.cache.readNow(key);
    if (cached) {
      const trusted = sameBlock(this.trusted.get(key), cached.info);
      const from = trusted ? "trusted" : cachedBlockMatches(this.codec, cached, block) ? "verified" : undefined;
      if (from) {
        source.release(block.data, true);
        return { index: block.index, info: cached.info, chunks: [cached.data], from };
      }
    }
    const usize = block.data.length;
    // The block's memory is ours alone (a source gives each block a whole buffer): the codec may move it.
    const { chunks, crc, input } = await this.codec.compress(block.data, true);
    const data = input ?? block.data;
    source.release(data, !chunks.includes(data));
    let ccrc = 0;
    let csize = 0;
    for (const chunk of chunks) {
      ccrc = crc32(chunk, ccrc);
      csize += chunk.length;
    }
    const info: BlockInfo = { key, usize, ucrc: crc >>> 0, csize, ccrc: ccrc >>> 0 };
    await this.cache.write(info, chunks);
    return { index: block.index, info, chunks, from: "compressed" };
  }
}

/** Where the blocks are read: see sources.ts. */
function sourceFor(blocks: Blocks, options: ProduceOptions): BlockSource {
  const { packed, keys, trusted, cache } = blocks;
  const tarTotal = packed.cuts[packed.cuts.length - 1] as number;
  if (producerMode(options.producer, tarTotal, keys, cache) !== "worker") return inlineSource(packed);
  const fewToRead = trusted.size > 0 && keys.length - trusted.size <= Math.max(4, keys.length >> 4);
  if (!fewToRead) return workerSource(packed);
  // The blocks taken on trust are the blob's bytes: the diffID may be hashed from them, unpacked.
  const members = { cacheDir: cache.cacheDir, compression: blocks.codec.compression, blocks: keys.map((key) => trusted.get(key) ?? null) };
  return decoupledSource(packed, (index) => blocks.needsData(index), members);
}

/** Take blocks from `source`, `window` of them finishing at once, and hand each on in order to `done`. */
async function drain(source: BlockSource, blocks: Blocks, signal: AbortSignal | undefined, done: (finished: Finished) => Promise<void>) {
  const inFlight: Promise<Finished>[] = [];
  try {
    let producing = true;
    for (;;) {
      while (producing && inFlight.length < window) {
        signal?.throwIfAborted();
        const block = await source.take();
        if (!block) {
          producing = false;
          break;
        }
        const pending = blocks.finish(block);
        pending.catch(() => {});
        inFlight.push(pending);
      }
      const next = inFlight.shift();
      if (!next) break;
      await done(await next);
    }
  } catch (error) {
    await Promise.allSettled(inFlight);
    throw error;
  }
}

/** Produce a layer's blob from its packed plan, into the block cache and, as it goes, to `options.tee`. */
export async function produce(
  packed: PackedPlan,
  codec: BlockCodec,
  cache: BlockCache,
  options: ProduceOptions,
  label: string,
  previous?: Previous,
): Promise<Produced> {
  const blocks = new Blocks(packed, codec, cache, previous);
  const tarTotal = packed.cuts[packed.cuts.length - 1] as number;
  // A block that is not taken on trust may need compressing: the codec gets ready while the first is read
  // (a thread boots when there is more than a block's worth). A one-file rebuild boots no thread.
  const toCompress = blocks.toCompress();
  if (toCompress > 0) codec.warm?.(toCompress);
  const source = sourceFor(blocks, options);
  blocks.source = source;
  const progress = options.progress ?? noProgress;
  // Blocks that are exactly the previous build's most likely make the same blob: no upload while building.
  const tee = options.tee && !blocks.same ? new TeeFeed(options.tee) : undefined;
  const digest = createHash("sha256");
  const garbage = new GarbageNudge(undefined, undefined, options.garbageNudges ?? true);
  const produced: Produced = {
    same: blocks.same,
    diffID: "sha256:",
    digest: "sha256:",
    size: 0,
    blocks: [],
    reused: 0,
    trusted: 0,
    unpacked: 0,
  };
  progress({ phase: "start", kind: "build", id: label, bytes: 0, total: tarTotal });
  try {
    await drain(source, blocks, options.signal, async (done) => {
      for (const chunk of done.chunks) {
        digest.update(chunk);
        produced.size += chunk.length;
        if (tee) await tee.push(chunk);
      }
      // Members made now come from the compressing threads; cached ones are read here, and count a quarter
      // (see garbage.ts: a rebuild that reads a 1 GiB layer's members back would otherwise get no nudge).
      garbage.add(done.from === "compressed" ? done.info.csize : done.info.csize / 4);
      if (done.from !== "compressed") produced.reused++;
      if (done.from === "trusted") produced.trusted++;
      produced.blocks.push(done.info);
      progress({ phase: "progress", kind: "build", id: label, bytes: packed.cuts[done.index] as number, total: tarTotal });
    });
    produced.diffID = (await source.diffID()) as Digest;
    produced.unpacked = (await source.unpackedBlocks?.()) ?? 0;
    produced.digest = `sha256:${digest.digest("hex")}`;
    if (tee) await tee.end();
    progress({ phase: "done", kind: "build", id: label, bytes: tarTotal, total: tarTotal });
    return produced;
  } catch (error) {
    if (tee) await tee.fail(error);
    throw error;
  } finally {
    await source.close();
  }
}
