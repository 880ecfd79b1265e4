/**
 * A worker thread that reads a layer's files and writes its tar, block by block, hashing the diffID on
 * the way, so that reading and hashing overlap compression and the blob digest on the main thread.
 * Requests (threads.ts): `{ block: memory }` produces the next block into that memory (moved there and
 * back), `{ diffID: true }` gives the tar's digest once every block is produced, `{ hash: true }` only
 * hashes the whole tar, keeping nothing, at a lower priority (a rebuild whose blocks come from the cache
 * needs the tar's bytes for nothing else, and the upload goes first), `{ close: true }` closes the file
 * being read. The owner sets `stop` to end a hashing run early.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { workerData } from "node:worker_threads";
import { BlockProducer, blockCapacity, hashPiece, type PackedPlan } from "./blocks.js";
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

/** Hash every block not produced yet into the diffID, a piece at a time. */
function hashRest(): string {
  yieldToOthers();
  const scratch = Buffer.allocUnsafeSlow(hashPiece);
  while (Atomics.load(stopped, 0) === 0 && producer.hashNext(scratch));
  return producer.diffID();
}

serveRequests((body: { block?: ArrayBuffer; diffID?: boolean; hash?: boolean; close?: boolean }) => {
  if (body.close) {
    producer.close();
    return { result: undefined };
  }
  if (body.hash) return { result: hashRest() };
  if (body.diffID) return { result: producer.diffID() };
  const size = producer.nextSize();
  if (size === 0) return { result: undefined };
  const memory = body.block && body.block.byteLength >= size ? body.block : new ArrayBuffer(Math.max(size, blockCapacity));
  const block = producer.next(memory);
  if (!block) return { result: undefined };
  const buffer = block.data.buffer as ArrayBuffer;
  return { result: { index: block.index, data: buffer, length: block.data.length }, transfer: [buffer] };
});
