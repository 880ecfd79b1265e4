/**
 * Where a layer's blocks come from, in order: read and hashed on the calling thread (a cold build, where
 * both cores compress anyway), on a producer thread of their own (a rebuild of a big layer mostly in the
 * block cache: the diffID hash then runs beside the main thread's work), or, when nearly every block is
 * taken from the cache, only the few that need their bytes read here while a thread hashes the whole tar
 * at a lower priority. Memory stays flat: at most `lookahead` blocks are in memory at once.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { BlockCache, CachedBlocks } from "./block-cache.js";
import { BlockProducer, blockCapacity, type PackedPlan, type ProducedBlock } from "./blocks.js";
import { Thread } from "./threads.js";

/** Layers whose tar is at least this large, mostly in the block cache, are produced in a worker thread. */
const workerThreshold = 32 << 20;
/**
 * Blocks being looked up or compressed at once, and blocks in memory in all (in flight, or produced and
 * waiting): 4 MiB each at most.
 */
export const window = 3;
const lookahead = 4;

/** Produces blocks in order, on this thread or a worker. */
export interface BlockSource {
  take(): Promise<ProducedBlock | undefined>;
  /**
   * Say a block is done with, letting the producer make another; with `reuse` its memory is given back
   * too (the buffer must not be used afterwards). Blocks in memory never exceed `lookahead`.
   */
  release(data: Buffer, reuse: boolean): void;
  diffID(): Promise<string>;
  /** Blocks whose bytes for the diffID were unpacked from the cache instead of read from the files. */
  unpackedBlocks?(): Promise<number>;
  close(): Promise<void>;
}

const producerWorkerUrl = new URL("./producer-worker.js", import.meta.url);

export function inlineSource(plan: PackedPlan): BlockSource {
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

/** A producer thread, and the flag that ends its hashing early. */
interface ProducerThread {
  thread: Thread;
  stop: Int32Array;
}

function startProducer(plan: PackedPlan): ProducerThread {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(producerWorkerUrl, { workerData: { plan, stop: stop.buffer } });
  return { thread: new Thread(worker, "layer producer"), stop };
}

/** Stop a producer thread: its hashing ends, the file it reads is closed, then the thread. */
async function stopProducer({ thread, stop }: ProducerThread): Promise<void> {
  Atomics.store(stop, 0, 1);
  if (!thread.broken) await thread.request({ close: true }).catch(() => {});
  await thread.terminate();
}

/**
 * Blocks produced on a thread of their own: up to `lookahead` requests in flight, each bringing the
 * memory of a block the caller is done with, so that buffers are reused and memory stays flat.
 */
export function workerSource(plan: PackedPlan): BlockSource {
  const producer = startProducer(plan);
  const asked: Promise<ProducedBlock | undefined>[] = [];
  const free: ArrayBuffer[] = [];
  let credits = lookahead;
  let requested = 0;
  const ask = (): void => {
    while (credits > 0 && requested < plan.cuts.length) {
      credits--;
      requested++;
      const memory = free.pop() ?? new ArrayBuffer(blockCapacity);
      const answer = producer.thread
        .request<{ index: number; data: ArrayBuffer; length: number } | undefined>({ block: memory }, [memory])
        .then((made) => made && { index: made.index, data: Buffer.from(made.data, 0, made.length) });
      answer.catch(() => {}); // take() reports it
      asked.push(answer);
    }
  };
  ask();
  return {
    take: async () => asked.shift(),
    release(data, reuse) {
      if (reuse) free.push(data.buffer as ArrayBuffer);
      credits++;
      ask();
    },
    diffID: () => producer.thread.request<string>({ diffID: true }),
    close: () => stopProducer(producer),
  };
}

/**
 * A rebuild's blocks when nearly all of them are taken from the cache on trust: the blocks that need
 * their bytes (`needsData`) are read on this thread, the others are handed out without any, and a
 * thread hashes the whole tar for the diffID on its own, at a lower priority (producer-worker.ts), taking
 * the bytes of blocks of many small files from `members` (the cached blocks taken on trust) instead of
 * their files. The upload of the cached blocks then never waits for the tar to be read.
 */
export function decoupledSource(plan: PackedPlan, needsData: (index: number) => boolean, members?: CachedBlocks): BlockSource {
  const hashing = startProducer(plan);
  const hashed = hashing.thread.request<{ diffID: string; unpacked: number }>({ hash: true, members });
  hashed.catch(() => {}); // diffID() reports it
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
    diffID: () => hashed.then((h) => h.diffID),
    unpackedBlocks: () => hashed.then((h) => h.unpacked),
    async close() {
      reader.close();
      await stopProducer(hashing);
    },
  };
}

/**
 * Where blocks are produced. Reading and hashing the tar in a worker thread pays off when compression is
 * not the bottleneck, i.e. on a rebuild whose blocks are mostly cached: the diffID hash then runs beside
 * the main thread's work (CRC checks, blob digest, upload). On a cold build both cores are busy
 * compressing anyway, and a worker measured 1.18x the CPU and +35 MiB RSS (docs/compression.md).
 */
export function producerMode(
  forced: "worker" | "inline" | undefined,
  tarTotal: number,
  keys: readonly string[],
  cache: BlockCache,
): "worker" | "inline" {
  // A bundler that inlined this module may have left the worker's file behind: produce inline then.
  if (!existsSync(fileURLToPath(producerWorkerUrl))) return "inline";
  if (forced) return forced;
  if (tarTotal < workerThreshold) return "inline";
  let cached = 0;
  for (const key of keys) if (existsSync(cache.path(key))) cached++;
  return cached * 2 >= keys.length ? "worker" : "inline";
}
