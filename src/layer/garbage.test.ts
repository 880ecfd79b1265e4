import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runInNewContext } from "node:vm";
import { GarbageNudge } from "./garbage.js";

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Whether an object that only a WeakRef knows about is gone after `act`. */
async function collectedBy(act: () => void): Promise<boolean> {
  const ref = new WeakRef({ payload: new Array(1000).fill(0) });
  await tick(); // a WeakRef keeps its target alive until the job that made it ends
  act();
  await tick();
  return ref.deref() === undefined;
}

// This test file runs in a process of its own, started without --expose-gc.
describe("garbage nudge", () => {
  it("collects after `every` bytes while the heap is small, and leaves --expose-gc off", async () => {
    assert.equal(runInNewContext("typeof gc"), "undefined");
    const nudge = new GarbageNudge(1000);
    assert.equal(await collectedBy(() => nudge.add(999)), false, "below the threshold: no collection");
    assert.equal(await collectedBy(() => nudge.add(1)), true, "collected by the nudge");
    assert.equal(runInNewContext("typeof gc"), "undefined", "the flag is back off: Node's cached code still fits");
  });

  it("leaves a heap larger than its limit to V8", async () => {
    assert.equal(await collectedBy(() => new GarbageNudge(1, 1024).add(1)), false, "any heap is over 1 KiB: no collection");
    assert.equal(await collectedBy(() => new GarbageNudge(1).add(1)), true, "the default limit lets this small heap be collected");
  });

  it("does nothing when a program turned the nudges off", async () => {
    assert.equal(await collectedBy(() => new GarbageNudge(1, undefined, false).add(1)), false, "turned off: no collection");
    assert.equal(await collectedBy(() => new GarbageNudge(1, undefined, true).add(1)), true, "on");
  });
});
