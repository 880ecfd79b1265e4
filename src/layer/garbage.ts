/**
 * A nudge to V8's collector while a layer builds. Compressed members come from worker threads in
 * ArrayBuffers that die once uploaded and cached, but V8 collects them only once ~64 MiB of them piled
 * up. Left alone, that garbage and the allocator's fragments around it put a 1 GiB layer's peak RSS at
 * 175-210 MiB; with a full collection after every `every` bytes of members (16 MiB), at 130-160 MiB,
 * with no time lost that paired runs could see (the compressing threads are the bottleneck, not this one).
 *
 * A full collection costs time in proportion to the live heap: 5-20 ms here on the few MiB a build keeps.
 * So a nudge runs only while V8's heap is small (`heapLimit`, 32 MiB by default; the CLI's build of the
 * bench's tree stays under 9). A host with a larger heap is left to V8's own schedule, and a program can
 * turn the nudges off (the `garbageNudges` option of a build). Reading a built layer back (BlockCache.open) gets no nudge:
 * there this thread is the bottleneck, and one every 16 MiB cost 25% more CPU for 14 MiB less RSS.
 * A rebuild that takes most members from the cache (produce.ts) counts them a quarter, one collection per
 * 64 MiB read: without it, a one-file rebuild of the bench's tree peaked at 165–193 MiB (median 184 of
 * 6); with it, at 164–178 (174), for the same CPU time as the streamed upload's sha256 it replaced
 * (6 interleaved pairs, December 2026). One per 16 MiB held it at 157–160 but cost 0.5 CPU-s more.
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** The collector once taken; null when it could not be. */
let collect: (() => void) | null | undefined;

/** The gc() of a context made now: there is one only while --expose-gc is on. */
function gcOfNewContext(): (() => void) | undefined {
  try {
    return runInNewContext("typeof gc === 'function' ? gc : undefined") as (() => void) | undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take gc(). --expose-gc is on only while it is taken, then set back: V8's flags are part of the key of
 * Node's cached compiled code, and while one differs from the command line's, every built-in module
 * loaded and every thread started compiles its code afresh (~45 ms more to boot a planner or compressing
 * thread, on the critical path of a small rebuild). Nothing else runs in between.
 */
function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  collect = gcOfNewContext() ?? null;
  if (collect) return collect;
  setFlagsFromString("--expose-gc");
  collect = gcOfNewContext() ?? null;
  setFlagsFromString("--no-expose-gc");
  return collect;
}

/** Counts bytes handed over and collects after every `every` of them, while V8's used heap is under `heapLimit`. */
export class GarbageNudge {
  readonly #every: number;
  readonly #heapLimit: number;
  readonly #enabled: boolean;
  #since = 0;

  constructor(every = 16 << 20, heapLimit = 32 << 20, enabled = true) {
    this.#every = every;
    this.#heapLimit = heapLimit;
    this.#enabled = enabled;
  }

  add(bytes: number): void {
    this.#since += bytes;
    if (this.#since < this.#every) return;
    this.#since = 0;
    if (!this.#enabled || getHeapStatistics().used_heap_size >= this.#heapLimit) return;
    collector()?.();
  }
}
