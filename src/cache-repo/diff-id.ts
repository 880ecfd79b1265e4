/**
 * A layer's diffID without building it: its tar produced from the plan and hashed, nothing compressed or
 * written. This is what the registry layer cache is keyed by; a fresh machine pays it (about one CPU-second
 * per GiB) to learn whether the registry already holds the blob, instead of compressing the whole layer.
 */
import type { Digest } from "../digest.js";
import { BlockProducer, blockCapacity, type PackedPlan } from "../layer/blocks.js";

/** Blocks produced between turns of the event loop (uploads and look-ups of other layers go on meanwhile). */
const blocksPerTurn = 8;

/** The sha256 of the tar a packed plan makes (its diffID), read with one reused buffer. */
export async function diffIDOfPlan(packed: PackedPlan, signal?: AbortSignal): Promise<Digest> {
  const producer = new BlockProducer(packed);
  const memory = new ArrayBuffer(blockCapacity);
  try {
    for (let produced = 1; producer.next(memory) !== undefined; produced++) {
      if (produced % blocksPerTurn === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
    }
  } finally {
    producer.close();
  }
  return producer.diffID() as Digest;
}
