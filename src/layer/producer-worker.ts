/**
 * A worker thread that reads a layer's files, writes its tar, hashes the diffID and hands the blocks to
 * the main thread (transferring their memory), so that reading and hashing overlap compression and the
 * blob digest. Flow control: the main thread grants credits in a shared Int32Array ([credits, abort]).
 */
import { parentPort, workerData } from "node:worker_threads";
import { OcifyError } from "../errors.js";
import { BlockProducer, type PackedPlan } from "./blocks.js";

const { plan, control } = workerData as { plan: PackedPlan; control: SharedArrayBuffer };
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

try {
  for (;;) {
    if (!waitForCredit()) break;
    const block = producer.next();
    if (!block) break;
    const { buffer } = block.data;
    port.postMessage({ type: "block", index: block.index, crc: block.crc, data: buffer }, [buffer as ArrayBuffer]);
  }
  if (Atomics.load(state, 1) === 0) port.postMessage({ type: "done", diffID: producer.diffID() });
} catch (error) {
  const known = error instanceof OcifyError;
  port.postMessage({
    type: "error",
    message: (error as Error).message,
    code: known ? error.code : undefined,
    hint: known ? error.hint : undefined,
  });
} finally {
  producer.close();
}
