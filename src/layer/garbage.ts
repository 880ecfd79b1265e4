/**
 * A nudge to V8's collector while a layer builds. Compressed members come from worker threads in
 * ArrayBuffers that die after the upload and the cache write; V8 collects them only once ~64 MiB of
 * them piled up, so a cold build's peak RSS carried ~50 MiB of garbage. When the host allows it (the CLI
 * calls allowGarbageNudges() at start), a full collection runs after every `every` bytes (16 MiB: 151 MiB
 * peak instead of 190-200 for the bench's cold build, no time lost that paired runs could see); each takes
 * a few milliseconds on a heap this small. A library host that did not allow it gets no nudge, unless it
 * runs node with --expose-gc.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

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
 * Let builds in this process nudge the collector. --expose-gc is on only while gc() is taken, then set
 * back: V8's flags are part of the key of Node's cached compiled code, and while one differs from the
 * command line's, every built-in module loaded and every thread started compiles its code afresh (~45 ms
 * more to boot a planner or compressing thread, on the critical path of a small rebuild).
 */
export function allowGarbageNudges(): void {
  if (collect) return;
  collect = gcOfNewContext();
  if (collect) return;
  setFlagsFromString("--expose-gc");
  collect = gcOfNewContext() ?? null;
  setFlagsFromString("--no-expose-gc");
}

function collector(): (() => void) | null {
  if (collect === undefined) collect = gcOfNewContext() ?? null;
  return collect;
}

/** Counts bytes handed over and collects after every `every` of them. */
export class GarbageNudge {
  readonly #every: number;
  #since = 0;

  constructor(every = 16 << 20) {
    this.#every = every;
  }

  add(bytes: number): void {
    this.#since += bytes;
    if (this.#since < this.#every) return;
    this.#since = 0;
    collector()?.();
  }
}
