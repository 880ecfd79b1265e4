/**
 * A nudge to V8's collector while a layer builds. Compressed members come from worker threads in
 * ArrayBuffers that die after the upload and the cache write; V8 collects them only once ~64 MiB of
 * them piled up, so a cold build's peak RSS carried ~50 MiB of garbage. When the process allows it (the
 * CLI turns on --expose-gc at start), a full collection runs after every `every` bytes (16 MiB: 151 MiB
 * peak instead of 190-200 for the bench's cold build, no time lost that paired runs could see); each takes
 * a few milliseconds on a heap this small. A library host that did not expose gc gets no nudge.
 */
import { runInNewContext } from "node:vm";

let collect: (() => void) | null | undefined;

function collector(): (() => void) | null {
  if (collect === undefined) {
    try {
      // A context made after the flag was set carries gc(); it collects the whole isolate.
      const gc = runInNewContext("typeof gc === 'function' ? gc : undefined") as (() => void) | undefined;
      collect = gc ?? null;
    } catch {
      collect = null;
    }
  }
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
