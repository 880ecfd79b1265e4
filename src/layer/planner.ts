/**
 * Planning layers ahead, on worker threads. Listing and stat'ing a tree of tens of thousands of files
 * is synchronous work of a few hundred milliseconds; started with the build, it runs beside the main
 * thread's own start (loading the registry client, resolving the base image) instead of after it. On a
 * rebuild whose big layers did not change, that is most of the time the build takes.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { type ErrorData, errorFromData } from "../errors.js";
import type { LayerSource, PlannedLayer, PlanOptions } from "./prepare.js";

const workerUrl = new URL("./planner-worker.js", import.meta.url);

interface Slot {
  promise: Promise<PlannedLayer | undefined>;
  resolve(plan: PlannedLayer | undefined): void;
  reject(error: unknown): void;
}

/** At most this many planner threads: one big tree need not hold back the small layers after it. */
const maxWorkers = 2;

/** Plans of a build's layers, made on up to two worker threads, each taking the next source when done. */
export class LayerPlanner {
  readonly #slots: Slot[];
  readonly #workers: Worker[] = [];

  private constructor(sources: readonly LayerSource[], options: PlanOptions) {
    this.#slots = sources.map(() => {
      const slot = {} as Slot;
      slot.promise = new Promise((resolve, reject) => Object.assign(slot, { resolve, reject }));
      slot.promise.catch(() => {}); // a layer never asked for may fail unobserved
      return slot;
    });
    let next = 0;
    let alive = 0;
    // Whatever the workers did not plan (one failed, or they were stopped) is planned on the main thread.
    const release = (index: number): void => this.#slots[index]?.resolve(undefined);
    for (let i = 0; i < Math.min(maxWorkers, sources.length); i++) {
      const worker = new Worker(workerUrl, { workerData: { options } });
      let current = -1;
      const feed = (): void => {
        current = next < sources.length ? next++ : -1;
        worker.postMessage(current < 0 ? null : { index: current, source: sources[current] });
      };
      worker.on("message", (message: { index: number; plan?: PlannedLayer; error?: ErrorData }) => {
        const slot = this.#slots[message.index] as Slot;
        if (message.error) slot.reject(errorFromData(message.error));
        else slot.resolve(message.plan);
        feed();
      });
      const gone = (): void => {
        release(current);
        current = -1;
        if (--alive === 0) while (next < sources.length) release(next++);
      };
      worker.on("error", () => {}); // "exit" follows, and the main thread plans what is left
      worker.once("exit", gone);
      this.#workers.push(worker);
      alive++;
      feed();
    }
  }

  /**
   * Start planning `sources`; undefined when there is nothing worth a thread (no directory among them)
   * or the worker's file is missing (a bundler inlined this module).
   */
  static start(sources: readonly LayerSource[], options: PlanOptions, worthIt: boolean): LayerPlanner | undefined {
    if (!worthIt || sources.length === 0 || !existsSync(fileURLToPath(workerUrl))) return undefined;
    return new LayerPlanner(sources, options);
  }

  /**
   * The plan of source `index`, or undefined (planned on the main thread then). Rejects with the error
   * planning met (a missing or unreadable file), as planning on the main thread would.
   */
  plan(index: number): Promise<PlannedLayer | undefined> {
    return this.#slots[index]?.promise ?? Promise.resolve(undefined);
  }

  /** Stop the workers (at once if they are still listing). */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
  }
}
