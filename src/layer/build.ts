/**
 * Layer builds: files → deterministic tar → diffID → compressed blocks → blob digest, in one streaming
 * pass with bounded memory. Blocks compress in parallel on worker threads and are cached by what went
 * into them, so a rebuild recompresses only the blocks whose files changed; when no file changed at all
 * (change detectors equal, racy-clean) the recorded layer is reused without reading any content.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker } from "node:worker_threads";
import { crc32 } from "node:zlib";
import { touchCacheEntry } from "../cache-prune.js";
import type { Digest } from "../digest.js";
import { type ErrorData, errorFromData, InputError, withSystemPath } from "../errors.js";
import { removeStaleTemps, tempPathFor, trackTemp, untrackTemp, writeFileAtomic } from "../fs-atomic.js";
import type { Descriptor } from "../image/descriptor.js";
import type { Compression } from "../media-types.js";
import { noProgress, type ProgressSink } from "../progress.js";
import { BlockCache, type BlockInfo, type CachedBlock, sameBlock } from "./block-cache.js";
import {
  type BlockKeys,
  BlockProducer,
  blockCapacity,
  blockKeys,
  blockStart,
  type PackedPlan,
  type ProducedBlock,
  packPlan,
} from "./blocks.js";
import { type BlockCodec, createCodec, gzipTrailer } from "./compression.js";
import { GarbageNudge } from "./garbage.js";
import { HeadStart } from "./head-start.js";
import { layerSourceKind } from "./plan.js";
import { writePlanFile } from "./plan-file.js";
import {
  encodeRecord,
  isRacy,
  type LayerHead,
  type LayerRecord,
  type LayerSource,
  layerFingerprint,
  type PlannedLayer,
  type PlanOptions,
  type Previous,
  planKeyOf,
  planLayer,
  recordVersion,
  statIndexPath,
} from "./prepare.js";
import { TeeFeed } from "./tee-feed.js";

export { AbandonedUpload } from "./head-start.js";
export { parseLayerFlag } from "./plan.js";
export { isRacy, type LayerHead, type LayerSource, type PlannedLayer } from "./prepare.js";

/** How to build a layer. */
export interface LayerBuildOptions {
  /** The ocify cache root; blocks go to `<cacheDir>/blocks`, layer records to `<cacheDir>/layers`. */
  cacheDir: string;
  compression: Compression;
  /** Compression level; default gzip 1, zstd 3 (see docs/compression.md). */
  level?: number;
  /** The media type the descriptor gets. */
  mediaType: string;
  /** Owner of every entry (default 0:0). */
  chown?: { uid: number; gid: number };
  /** Keep on-disk (or in-archive) owners, as `ocify import` does. */
  preserveOwners?: boolean;
  /** Seconds since the epoch for every entry's mtime (SOURCE_DATE_EPOCH, default 0). */
  mtime?: number;
  signal?: AbortSignal;
  /** Receives phase start/progress/done events of kind "build"; bytes count the uncompressed tar. */
  progress?: ProgressSink;
  /**
   * Receives the compressed blob as it is produced (a concurrent upload); awaited, and it applies backpressure.
   * Not called when the layer is unchanged since the recorded build (nothing is produced then), nor when
   * its blocks are the recorded build's (the blob is then most likely one the destination has).
   */
  tee?: (content: Readable) => Promise<void>;
  /** The history line; default "ocify layer KIND -> DEST", KIND as layerSourceKind says (never a host path). */
  createdBy?: string;
  /** Hears, in one line, what a source holds that the layer cannot keep (the CLI prints it as a warning). */
  warn?: (message: string) => void;
}

/** A layer in the cache. */
export interface BuiltLayer {
  /** The compressed blob's media type, digest and size. */
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** A history line for the image config. */
  createdBy: string;
  /** The compressed blob again, read from the cache and verified while it streams. */
  open(): Readable;
  /** Size of the uncompressed tar. */
  tarSize: number;
  /** Blocks in the blob, and how many were taken from the cache instead of compressed. */
  blocks: number;
  reusedBlocks: number;
  /**
   * Of the reused blocks, how many were taken on the previous build's word (same key, no racy file)
   * without comparing them with the files' bytes again.
   */
  trustedBlocks: number;
  /** Of the trusted blocks, how many `tee` received before the layer's plan was made (head-start.ts). */
  aheadBlocks: number;
  /** Whether nothing was read: no file changed since the recorded build. */
  unchanged: boolean;
  /**
   * Make the layer's cached blocks whole again after open() found one damaged (it removed it): the layer
   * is built again, recompressing what is missing. Fails when the files changed meanwhile (another blob).
   */
  repair(): Promise<void>;
}

/** Layers whose tar is at least this large, mostly in the block cache, are produced in a worker thread. */
const workerThreshold = 32 << 20;
/**
 * Blocks being looked up or compressed at once, and blocks in memory in all (in flight, or produced and
 * waiting): 4 MiB each at most.
 */
const window = 3;
const lookahead = 4;

/** Produces blocks in order, on this thread or a worker. */
interface BlockSource {
  take(): Promise<ProducedBlock | undefined>;
  /**
   * Say a block is done with, letting the producer make another; with `reuse` its memory is given back
   * too (the buffer must not be used afterwards). Blocks in memory never exceed `lookahead`.
   */
  release(data: Buffer, reuse: boolean): void;
  diffID(): Promise<string>;
  close(): Promise<void>;
}

const producerWorkerUrl = new URL("./producer-worker.js", import.meta.url);

function inlineSource(plan: PackedPlan): BlockSource {
  const producer = new BlockProducer(plan);
  const free: ArrayBuffer[] = [];
  return {
    async take() {
      const size = producer.nextSize();
      const index = free.findIndex((buffer) => buffer.byteLength >= size);
      const memory = index >= 0 ? (free.splice(index, 1)[0] as ArrayBuffer) : new ArrayBuffer(Math.max(size, blockCapacity));
      return size > 0 ? producer.next(memory) : undefined;
    },
    release(data, reuse) {
      if (reuse) free.push(data.buffer as ArrayBuffer);
    },
    async diffID() {
      return producer.diffID();
    },
    async close() {
      producer.close();
    },
  };
}

/** With `hashOnly`, the thread only hashes the diffID: take() then settles once it is done. */
function workerSource(plan: PackedPlan, hashOnly = false): BlockSource {
  const control = new SharedArrayBuffer(8);
  const state = new Int32Array(control);
  state[0] = lookahead;
  const channel = new MessageChannel();
  const worker = new Worker(producerWorkerUrl, {
    workerData: { plan, control, recycle: channel.port2, hashOnly },
    transferList: [channel.port2],
  });
  channel.port1.unref();
  const queue: ProducedBlock[] = [];
  let waiter: { resolve: (b: ProducedBlock | undefined) => void; reject: (e: unknown) => void } | undefined;
  let failure: unknown;
  let finished = false;
  let diffID: string | undefined;
  const settle = (): void => {
    if (!waiter) return;
    const w = waiter;
    if (queue.length > 0) {
      waiter = undefined;
      w.resolve(queue.shift());
    } else if (failure !== undefined) {
      waiter = undefined;
      w.reject(failure);
    } else if (finished) {
      waiter = undefined;
      w.resolve(undefined);
    }
  };
  worker.on(
    "message",
    (
      message: {
        type: string;
        index: number;
        data: ArrayBuffer;
        length: number;
        diffID: string;
      } & ErrorData,
    ) => {
      if (message.type === "block") queue.push({ index: message.index, data: Buffer.from(message.data, 0, message.length) });
      else if (message.type === "done") {
        diffID = message.diffID;
        finished = true;
      } else if (message.type === "error") failure = errorFromData(message);
      settle();
    },
  );
  worker.on("error", (error) => {
    failure ??= error;
    settle();
  });
  worker.on("exit", () => {
    if (!finished) failure ??= new Error("the layer producer thread stopped unexpectedly");
    settle();
  });
  return {
    take() {
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        settle();
      });
    },
    release(data, reuse) {
      if (reuse) {
        const memory = data.buffer as ArrayBuffer;
        channel.port1.postMessage(memory, [memory]);
      }
      Atomics.add(state, 0, 1);
      Atomics.notify(state, 0);
    },
    async diffID() {
      if (diffID === undefined) throw new Error("the layer producer thread did not finish");
      return diffID;
    },
    async close() {
      Atomics.store(state, 1, 1);
      Atomics.notify(state, 0);
      await worker.terminate();
      channel.port1.close();
    },
  };
}

interface Produced {
  diffID: Digest;
  digest: Digest;
  size: number;
  blocks: BlockInfo[];
  reused: number;
  trusted: number;
  ahead: number;
}

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
 * A rebuild's blocks when nearly all of them are taken from the cache on trust: the blocks that need
 * their bytes (`needsData`) are read on this thread, the others are handed out without any, and a
 * thread hashes the whole tar for the diffID on its own, at a lower priority (producer-worker.ts). The
 * upload of the cached blocks then never waits for the tar to be read.
 */
function decoupledSource(plan: PackedPlan, needsData: (index: number) => boolean): BlockSource {
  const hashing = workerSource(plan, true);
  const reader = new BlockProducer(plan);
  const none = Buffer.alloc(0);
  let next = 0;
  return {
    async take() {
      if (next >= plan.cuts.length) return undefined;
      const index = next++;
      if (!needsData(index)) return { index, data: none };
      reader.skipTo(index);
      return reader.next();
    },
    release() {},
    async diffID() {
      await hashing.take(); // no blocks come from a hashing thread: this settles when it is done
      return hashing.diffID();
    },
    async close() {
      reader.close();
      await hashing.close();
    },
  };
}

/**
 * Where blocks are produced. Reading and hashing the tar in a worker thread pays off when compression is
 * not the bottleneck, i.e. on a rebuild whose blocks are mostly cached: the diffID hash then runs beside
 * the main thread's work (CRC checks, blob digest, upload). On a cold build both cores are busy
 * compressing anyway, and a worker measured 1.18x the CPU and +35 MiB RSS (docs/compression.md).
 */
function producerMode(forced: string | undefined, tarTotal: number, keys: readonly string[], cache: BlockCache): "worker" | "inline" {
  // A bundler that inlined this module may have left the worker's file behind: produce inline then.
  if (!existsSync(fileURLToPath(producerWorkerUrl))) return "inline";
  if (forced === "worker" || forced === "inline") return forced;
  if (tarTotal < workerThreshold) return "inline";
  let cached = 0;
  for (const key of keys) if (existsSync(cache.path(key))) cached++;
  return cached * 2 >= keys.length ? "worker" : "inline";
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

async function produce(
  packed: PackedPlan,
  codec: BlockCodec,
  cache: BlockCache,
  options: LayerBuildOptions,
  label: string,
  previous?: Previous,
  head?: HeadStart,
): Promise<Produced> {
  const scanStartNs = previous ? BigInt(previous.scanStartNs) : 0n;
  const blockKeyed = blockKeys(packed, codec.id, previous && ((mtimeNs) => isRacy(mtimeNs, scanStartNs)));
  const { keys } = blockKeyed;
  const trusted = trustedBlocks(previous, blockKeyed);
  // Blocks that are exactly the previous build's (a layer read again only because a file looked racy)
  // most likely make the same blob, which the destination then has: no upload while building.
  const sameBlocks = previous !== undefined && previous.blocks.length === keys.length && previous.blocks.every((b, i) => b.key === keys[i]);
  const tarTotal = packed.cuts[packed.cuts.length - 1] as number;
  // A block that is not taken on trust may need compressing: the codec gets ready while the first is read
  // (a thread boots when there is more than a block's worth). A one-file rebuild boots no thread.
  let toCompress = 0;
  for (const [i, key] of keys.entries()) if (!trusted.has(key)) toCompress += (packed.cuts[i] as number) - blockStart(packed, i);
  if (toCompress > 0) codec.warm?.(toCompress);
  const useWorker = producerMode(process.env.OCIFY_LAYER_PRODUCER, tarTotal, keys, cache) === "worker";
  // Cached blocks checked ahead, when the source hands them out without their bytes.
  const onTrust = new Map<number, CachedBlock>();
  let aheadCount = 0; // blocks a head start sent: known once it is stopped, below
  const needsData = (index: number): boolean => {
    if (index < aheadCount) return false; // sent already: skipped below
    const key = keys[index] as string;
    const info = trusted.get(key);
    const cached = info && cache.readNow(key);
    if (!cached || !sameBlock(info, cached.info)) return true;
    onTrust.set(index, cached);
    return false;
  };
  const fewToRead = trusted.size > 0 && keys.length - trusted.size <= Math.max(4, keys.length >> 4);
  const source = !useWorker ? inlineSource(packed) : fewToRead ? decoupledSource(packed, needsData) : workerSource(packed);
  // A head start goes on sending until the blocks are about to flow; what it sent must be the plan's
  // first blocks, each taken on trust, else its upload is dropped.
  let ahead: { blocks: readonly BlockInfo[]; size: number } = { blocks: [], size: 0 };
  if (head) {
    try {
      ahead = await head.stop();
    } catch (error) {
      await source.close();
      throw error;
    }
    if (sameBlocks || !ahead.blocks.every((info, i) => info.key === keys[i] && trusted.has(info.key))) {
      await head.abandon(sameBlocks ? "the layer has the recorded build's blocks" : "the blocks sent ahead are not the plan's");
      head = undefined;
      ahead = { blocks: [], size: 0 };
    }
    aheadCount = ahead.blocks.length;
  }
  const progress = options.progress ?? noProgress;
  const tee = head ? head.feed : options.tee && !sameBlocks ? new TeeFeed(options.tee) : undefined;
  const digest = head ? head.digest : createHash("sha256");
  const garbage = new GarbageNudge();
  const blocks: BlockInfo[] = [...ahead.blocks];
  let size = ahead.size;
  let reused = aheadCount;
  let trustedCount = aheadCount;

  const finish = async (block: ProducedBlock): Promise<Finished> => {
    const key = keys[block.index] as string;
    const early = onTrust.get(block.index);
    if (early) {
      onTrust.delete(block.index);
      return { index: block.index, info: early.info, chunks: [early.data], from: "trusted" };
    }
    const cached = cache.readNow(key);
    if (cached) {
      const from = sameBlock(trusted.get(key), cached.info) ? "trusted" : cachedBlockMatches(codec, cached, block) ? "verified" : undefined;
      if (from) {
        source.release(block.data, true);
        return { index: block.index, info: cached.info, chunks: [cached.data], from };
      }
    }
    const usize = block.data.length;
    // The block's memory is ours alone (a source gives each block a whole buffer): the codec may move it.
    const { chunks, crc, input } = await codec.compress(block.data, true);
    const data = input ?? block.data;
    source.release(data, !chunks.includes(data));
    let ccrc = 0;
    let csize = 0;
    for (const chunk of chunks) {
      ccrc = crc32(chunk, ccrc);
      csize += chunk.length;
    }
    const info: BlockInfo = { key, usize, ucrc: crc >>> 0, csize, ccrc: ccrc >>> 0 };
    await cache.write(info, chunks);
    return { index: block.index, info, chunks, from: "compressed" };
  };

  progress({ phase: "start", kind: "build", id: label, bytes: 0, total: tarTotal });
  const inFlight: Promise<Finished>[] = [];
  try {
    let producing = true;
    for (;;) {
      while (producing && inFlight.length < window) {
        options.signal?.throwIfAborted();
        const block = await source.take();
        if (!block) {
          producing = false;
          break;
        }
        if (block.index < aheadCount) {
          source.release(block.data, true);
          continue;
        }
        const pending = finish(block);
        pending.catch(() => {});
        inFlight.push(pending);
      }
      const next = inFlight.shift();
      if (!next) break;
      const done = await next;
      for (const chunk of done.chunks) {
        digest.update(chunk);
        size += chunk.length;
        if (tee) await tee.push(chunk);
      }
      // Members made now come from the compressing threads (see garbage.ts); cached ones are read here.
      if (done.from === "compressed") garbage.add(done.info.csize);
      blocks.push(done.info);
      if (done.from !== "compressed") reused++;
      if (done.from === "trusted") trustedCount++;
      progress({ phase: "progress", kind: "build", id: label, bytes: packed.cuts[done.index] as number, total: tarTotal });
    }
    const diffID = (await source.diffID()) as Digest;
    if (tee) await tee.end();
    progress({ phase: "done", kind: "build", id: label, bytes: tarTotal, total: tarTotal });
    return { diffID, digest: `sha256:${digest.digest("hex")}`, size, blocks, reused, trusted: trustedCount, ahead: aheadCount };
  } catch (error) {
    await Promise.allSettled(inFlight);
    if (tee) await tee.fail(error);
    throw error;
  } finally {
    await source.close();
  }
}

function layerOf(
  record: LayerRecord,
  cache: BlockCache,
  mediaType: string,
  createdBy: string,
  counts: { unchanged: boolean; reused: number; trusted: number; ahead: number },
  rebuild: () => Promise<BuiltLayer>,
): BuiltLayer {
  const descriptor: Descriptor = { mediaType, digest: record.digest, size: record.size };
  return {
    async repair() {
      const again = await rebuild();
      if (again.descriptor.digest !== record.digest) {
        throw new InputError(
          `layer ${createdBy}: its files changed while the image was being built ${again.descriptor.digest} ${record.digest} ${again.unchanged}`,
          {
            hint: "run the build again once they stay put",
          },
        );
      }
    },
    descriptor,
    diffID: record.diffID,
    createdBy,
    tarSize: record.tarSize,
    blocks: record.blocks.length,
    reusedBlocks: counts.reused,
    trustedBlocks: counts.trusted,
    aheadBlocks: counts.ahead,
    unchanged: counts.unchanged,
    open: () => cache.open(record.blocks, descriptor, `layer ${record.digest}`),
  };
}

/** Keep a stat index beside its record; failing to is harmless (the next build lists the files). */
async function writeStatIndex(recordPath: string, index: Uint8Array): Promise<void> {
  await writeFileAtomic(statIndexPath(recordPath), index).catch(() => {});
}

/** The planning inputs of a build's options, with the codec's id. */
export function planOptionsOf(options: LayerBuildOptions, codecId: string): PlanOptions {
  return { cacheDir: options.cacheDir, codecId, chown: options.chown, preserveOwners: options.preserveOwners, mtime: options.mtime };
}

/** Where a layer's record lives and the fingerprint its sources have now (for tests and diagnostics). */
export async function layerState(source: LayerSource, options: LayerBuildOptions): Promise<{ recordPath: string; fingerprint: string }> {
  const codec = await createCodec(options.compression, options.level);
  try {
    return layerFingerprint(source, planOptionsOf(options, codec.id));
  } finally {
    await codec.close();
  }
}

/**
 * Build a layer from a directory, a file or a tarball into the cache (or reuse what an earlier build left
 * there). `planned` is the layer's plan made ahead (by the planner worker, while the base image was being
 * resolved); without it, or when it was made with other options, the layer is planned here. `head`, from
 * the same planner, settles no later than `planned`: when it brings the blocks a changed layer's blob starts
 * with, `tee` starts receiving them before the plan is there (head-start.ts).
 */
export async function buildLayer(
  source: LayerSource,
  options: LayerBuildOptions,
  planned?: Promise<PlannedLayer | undefined>,
  head?: Promise<LayerHead | undefined>,
): Promise<BuiltLayer> {
  options.signal?.throwIfAborted();
  const createdBy = options.createdBy ?? `ocify layer ${layerSourceKind(source.source, options.preserveOwners ?? false)} -> ${source.dest}`;
  // A repair plans the layer anew (the damaged blocks are gone by then) and sends nothing while it builds.
  const rebuild = () => {
    const { tee: _sent, ...quiet } = options;
    return buildLayer(source, quiet);
  };
  const cache = new BlockCache(options.cacheDir);
  const ahead = options.tee && head && planned ? await Promise.race([head, planned.then(noHead, noHead)]) : undefined;
  let early = options.tee && ahead ? new HeadStart(cache, ahead.blocks, options.tee) : undefined;
  let codec: BlockCodec | undefined;
  try {
    codec = await createCodec(options.compression, options.level);
    const planOptions = planOptionsOf(options, codec.id);
    let plan = await planned;
    if (plan?.key !== planKeyOf(planOptions)) plan = planLayer(source, planOptions);
    if (plan.kind !== "tree") {
      await early?.abandon("the layer is not built from a directory's plan");
      early = undefined;
    }
    if (plan.kind === "unchanged") {
      const { record } = plan;
      await touchCacheEntry(plan.recordPath); // its blocks count as used now (cache-prune.ts)
      if (plan.statIndex) await writeStatIndex(plan.recordPath, plan.statIndex);
      options.progress?.({ phase: "skipped", kind: "build", id: source.source, bytes: record.tarSize, total: record.tarSize });
      // No tee: the blob was produced before, and the caller asks the destination whether it has it.
      return layerOf(
        record,
        cache,
        options.mediaType,
        createdBy,
        { unchanged: true, reused: record.blocks.length, trusted: record.blocks.length, ahead: 0 },
        rebuild,
      );
    }
    let spool: string | undefined;
    try {
      let packed: PackedPlan;
      if (plan.kind === "tarball") {
        mkdirSync(join(options.cacheDir, "tmp"), { recursive: true });
        await removeStaleTemps(join(options.cacheDir, "tmp"), "spool"); // spools of killed runs
        spool = tempPathFor(join(options.cacheDir, "tmp", "spool"));
        trackTemp(spool);
        // Loaded here: a build from directories has no use for the tarball reader, and skips loading it.
        const { planTarball } = await import("./tarball.js");
        const spooling = planTarball(source.source, source.dest, plan.entryOptions, spool, plan.stat, options.signal, options.warn);
        packed = packPlan(await withSystemPath(join(options.cacheDir, "tmp"), () => spooling));
      } else packed = plan.packed;
      const { recordPath, fingerprint, scanStartNs } = plan;
      const statIndex = plan.kind === "tree" ? plan.statIndex : undefined;
      const previous = plan.kind === "tree" ? plan.previous : undefined;
      const xattrs = plan.kind === "tree" && plan.xattrs;
      plan = undefined; // a tree's entries are packed; let the rest go before the long part
      const adopted = early;
      early = undefined; // produce() owns it now
      const produced = await produce(packed, codec, cache, options, source.source, previous, adopted);
      const built: LayerRecord = {
        version: recordVersion,
        fingerprint,
        scanStartNs,
        diffID: produced.diffID,
        digest: produced.digest,
        size: produced.size,
        tarSize: packed.cuts[packed.cuts.length - 1] as number,
        blocks: produced.blocks,
        ...(xattrs ? { xattrs } : {}),
      };
      // A tarball read as a stream has no record: nothing tells whether the next one is the same.
      if (recordPath !== "") await writeFileAtomic(recordPath, encodeRecord(built));
      // After the record: an index or a plan names the record it belongs to, so one left from another
      // build is ignored.
      if (statIndex) await writeStatIndex(recordPath, statIndex);
      if (statIndex) await writePlanFile(recordPath, fingerprint, packed);
      return layerOf(built, cache, options.mediaType, createdBy, { unchanged: false, ...produced }, rebuild);
    } finally {
      if (spool) {
        rmSync(spool, { force: true });
        untrackTemp(spool);
      }
    }
  } catch (error) {
    await early?.abandon("the build failed");
    throw error;
  } finally {
    await codec?.close();
  }
}

const noHead = (): undefined => undefined;

/** `docker import`: a root filesystem directory or tarball as one layer at "/", owners, modes, devices and links kept. */
export function importRootfs(path: string, options: Omit<LayerBuildOptions, "preserveOwners">): Promise<BuiltLayer> {
  return buildLayer(
    { source: path, dest: "/" },
    { createdBy: `ocify import ${layerSourceKind(path, true)}`, ...options, preserveOwners: true },
  );
}
