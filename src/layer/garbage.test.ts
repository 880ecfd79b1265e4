import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runInNewContext } from "node:vm";
import { GarbageNudge, setGarbageNudges } from "./garbage.js";

/** Make an object only a WeakRef knows about, in a frame of its own. */
function unreachable(): WeakRef<object> {
  return new WeakRef({ payload: new Array(1000).fill(0) });
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// This test file runs in a process of its own, started without --expose-gc. A WeakRef keeps its target
// alive until the job that made or read it ends, hence the ticks.
describe("garbage nudge", () => {
  it("collects after `every` bytes while the heap is small, and leaves --expose-gc off", async () => {
    assert.equal(runInNewContext("typeof gc"), "undefined");
    const nudge = new GarbageNudge(1000);
    const ref = unreachable();
    await tick();
    nudge.add(999);
    await tick();
    assert.notEqual(ref.deref(), undefined, "below the threshold: no collection");
    await tick();
    nudge.add(1);
    await tick();
    assert.equal(ref.deref(), undefined, "collected by the nudge");
    assert.equal(runInNewContext("typeof gc"), "undefined", "the flag is back off: Node's cached code still fits");
  });

  it("leaves a heap larger than its limit to V8", async () => {
    const nudge = new GarbageNudge(1, 1024); // any heap is over 1 KiB
    const ref = unreachable();
    await tick();
    nudge.add(1);
    await tick();
    assert.notEqual(ref.deref(), undefined, "no collection was forced");
    await tick();
    new GarbageNudge(1).add(1);
    await tick();
    assert.equal(ref.deref(), undefined, "the default limit lets this small heap be collected");
  });

  it("does nothing once a host turns the nudges off", async () => {
    setGarbageNudges(false);
    try {
      const ref = unreachable();
      await tick();
      new GarbageNudge(1).add(1);
      await tick();
      assert.notEqual(ref.deref(), undefined, "no collection was forced");
      await tick();
      setGarbageNudges(true);
      new GarbageNudge(1).add(1);
      await tick();
      assert.equal(ref.deref(), undefined);
    } finally {
      setGarbageNudges(true);
    }
  });
});
