/**
 * A worker thread that reads a layer's files, writes its tar, hashes the diffID and hands the blocks to
 * the main thread (transferring their memory), so that reading and hashing overlap compression and the
 * blob digest. Flow control: the main thread grants credits in a shared Int32Array ([credits, abort]).
 *
 * With `hashOnly`, it only hashes the diffID, a piece at a time, keeping nothing, at a lower priority: a
 * rebuild whose blocks come from the cache needs the tar's bytes for nothing else, and the upload (this
 * process's main thread and the registry) goes first; the hashing catches up when they wait, as the
 * registry does at the end of an upload while it syncs the blob to disk.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { errorToData } from "../errors.js";
import { BlockProducer, blockCapacity, hashPiece, type PackedPlan } from "./blocks.js";

const { plan, control, recycle, hashOnly } = workerData as {
  plan: PackedPlan;
  control: SharedArrayBuffer;
  recycle: MessagePort;
  hashOnly?: boolean;
};
const free: ArrayBuffer[] = [];

/** A buffer for the next block: one the main thread gave back, or a new one. */
function memoryFor(size: number): ArrayBuffer {
  for (let message = receiveMessageOnPort(recycle); message; message = receiveMessageOnPort(recycle))
    free.push(message.message as ArrayBuffer);
  const index = free.findIndex((buffer) => buffer.byteLength >= size);
  if (index >= 0) return free.splice(index, 1)[0] as ArrayBuffer;
  return new ArrayBuffer(Math.max(size, blockCapacity));
}
const state = new Int32Array(control);
const port = parentPort as NonNullable<typeof parentPort>;
const producer = new BlockProducer(plan);

function waitForCredit(): boolean {
  for (;;) {
    if (Atomics.load(state, 1) !== 0) return false;
    const credits = Atomics.load(state, 0);
    if (credits > 0) {
      if (Atomics.compareExchange(state, 0, credits, credits - 1) === credits) return true;
      continue;
    }
    Atomics.wait(state, 0, credits, 1000);
  }
}

/** Lower this thread's priority (Linux: a thread's id is a process id to setpriority); best effort. */
function yieldToOthers(): void {
  try {
    setPriority(Number(readlinkSync("/proc/thread-self").split("/").pop()), 10);
  } catch {
    // Another system, or not allowed: the same work at the same priority.
  }
}

try {
  if (hashOnly) {
    yieldToOthers();
    const scratch = Buffer.allocUnsafeSlow(hashPiece);
    while (Atomics.load(state, 1) === 0 && producer.hashNext(scratch));
  } else {
    for (;;) {
      if (!waitForCredit()) break;
      const size = producer.nextSize();
      const block = size > 0 ? producer.next(memoryFor(size)) : undefined;
      if (!block) break;
      const { buffer } = block.data;
      port.postMessage({ type: "block", index: block.index, data: buffer, length: block.data.length }, [buffer as ArrayBuffer]);
    }
  }
  if (Atomics.load(state, 1) === 0) port.postMessage({ type: "done", diffID: producer.diffID() });
} catch (error) {
  port.postMessage({ type: "error", ...errorToData(error) });
} finally {
  producer.close();
}
