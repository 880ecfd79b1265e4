/**
 * A worker thread that reads a layer's files and writes its tar, block by block, hashing the diffID on
 * the way, so that reading and hashing overlap compression and the blob digest on the main thread.
 * Requests (threads.ts): `{ block: memory }` produces the next block into that memory (moved there and
 * back), `{ diffID: true }` gives the tar's digest once every block is produced, `{ hash: true }` only
 * hashes the whole tar, keeping nothing, at a lower priority (a rebuild whose blocks come from the cache
 * needs the tar's bytes for nothing else, and the upload goes first), with `members` taking the bytes of
 * blocks of many small files from their cached members, `{ close: true }` closes the file
 * being read. The owner sets `stop` to end a hashing run early.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { workerData } from "node:worker_threads";
import type { BlockInfo, CachedBlocks } from "./block-cache.js";
import { BlockProducer, blockCapacity, hashPiece, type PackedPlan, readsPerBlock } from "./blocks.js";
import { serveRequests } from "./threads.js";

const { plan, stop } = workerData as { plan: PackedPlan; stop: SharedArrayBuffer };
const stopped = new Int32Array(stop);
const producer = new BlockProducer(plan);

/** Lower this thread's priority (Linux: a thread's id is a process id to setpriority); best effort. */
function yieldToOthers(): void {
  try {
    setPriority(Number(readlinkSync("/proc/thread-self").split("/").pop()), 10);
  } catch {
    // Another system, or not allowed: the same work at the same priority.
  }
}

/**
 * A block whose files hold less than this on average is taken from its cached member, unpacked, rather
 * than read: opening, reading and closing a small file costs ~15 us here, gunzip ~2.7 ns a byte, and
 * members unpack on the thread pool, several at once. The bench's big tree (300,000 files of ~1.5 KiB)
 * is all such blocks; the one-layer tree's (files of ~25 KiB, and one of 512 MiB) has next to none.
 */
const unpackBelowPerRead = 8 << 10;
/** Members being unpacked ahead of the hash, at most. */
const unpackAhead = 4;

/** Per block, the cached block to take its bytes from (one of `members` worth unpacking), or undefined. */
function membersToUnpack(members: CachedBlocks | undefined): (BlockInfo | undefined)[] {
  if (!members) return [];
  const reads = readsPerBlock(plan);
  return members.blocks.map((info, i) => {
    const size = (plan.cuts[i] as number) - (i === 0 ? 0 : (plan.cuts[i - 1] as number));
    return info && size < (reads[i] as number) * unpackBelowPerRead ? info : undefined;
  });
}

/**
 * Hash every block not produced yet into the diffID: from its cached member when `members` offers one
 * worth unpacking (the bytes the blob is made of), else from its files, a piece at a time.
 */
async function hashRest(members: CachedBlocks | undefined): Promise<{ diffID: string; unpacked: number }> {
  yieldToOthers();
  const scratch = Buffer.allocUnsafeSlow(hashPiece);
  const unpack = membersToUnpack(members);
  const cache = members && unpack.some(Boolean) ? new (await import("./block-cache.js")).BlockCache(members.cacheDir) : undefined;
  const ahead = new Map<number, Promise<Buffer | undefined>>();
  let scheduled = producer.nextIndex;
  let unpacked = 0;
  while (Atomics.load(stopped, 0) === 0 && producer.nextSize() > 0) {
    for (; cache && members && ahead.size < unpackAhead && scheduled < unpack.length; scheduled++) {
      const info = unpack[scheduled];
      if (info)
        ahead.set(
          scheduled,
          cache.unpacked(info, members.compression).catch(() => undefined),
        );
    }
    const index = producer.nextIndex;
    const pending = ahead.get(index);
    ahead.delete(index);
    const bytes = pending && (await pending);
    // A member missing, damaged or not the block: its files are read instead.
    if (bytes && producer.hashGiven(bytes)) unpacked++;
    else producer.hashNext(scratch);
  }
  return { diffID: producer.diffID(), unpacked };
}

serveRequests((body: { block?: ArrayBuffer; diffID?: boolean; hash?: boolean; members?: CachedBlocks; close?: boolean }) => {
  if (body.close) {
    producer.close();
    return { result: undefined };
  }
  if (body.hash) return hashRest(body.members).then((result) => ({ result }));
  if (body.diffID) return { result: producer.diffID() };
  const size = producer.nextSize();
  if (size === 0) return { result: undefined };
  const memory = body.block && body.block.byteLength >= size ? body.block : new ArrayBuffer(Math.max(size, blockCapacity));
  const block = producer.next(memory);
  if (!block) return { result: undefined };
  const buffer = block.data.buffer as ArrayBuffer;
  return { result: { index: block.index, data: buffer, length: block.data.length }, transfer: [buffer] };
});
