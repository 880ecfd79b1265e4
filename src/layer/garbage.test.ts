import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runInNewContext } from "node:vm";
import { allowGarbageNudges, GarbageNudge } from "./garbage.js";

/** Make an object only a WeakRef knows about, in a frame of its own. */
function unreachable(): WeakRef<object> {
  return new WeakRef({ payload: new Array(1000).fill(0) });
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("garbage nudge", () => {
  it("collects when allowed, and leaves --expose-gc off again", async () => {
    // This test file runs in a process of its own, started without --expose-gc.
    assert.equal(runInNewContext("typeof gc"), "undefined");
    const ref = unreachable();
    await tick(); // a WeakRef keeps its target alive until the job that made it ends
    new GarbageNudge(1).add(1);
    await tick();
    assert.notEqual(ref.deref(), undefined, "not allowed yet: no collection was forced");

    allowGarbageNudges();
    assert.equal(runInNewContext("typeof gc"), "undefined", "the flag is back off: Node's cached code still fits");
    const nudge = new GarbageNudge(1000);
    const other = unreachable();
    await tick();
    nudge.add(999);
    await tick();
    assert.notEqual(other.deref(), undefined, "below the threshold: no collection");
    await tick(); // deref() too keeps the target alive until the job ends
    nudge.add(1);
    await tick();
    assert.equal(ref.deref(), undefined, "collected by the nudge");
    assert.equal(other.deref(), undefined);
  });
});
