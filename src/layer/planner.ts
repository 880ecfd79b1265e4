/**
 * Planning layers ahead, on worker threads. Listing and stat'ing a tree of tens of thousands of files
 * is synchronous work of a few hundred milliseconds; started with the build, it runs beside the main
 * thread's own start (loading the registry client, resolving the base image) instead of after it. On a
 * rebuild whose big layers did not change, that is most of the time the build takes.
 */
import { statSync } from "node:fs";
import { defaultCacheDir } from "../cache.js";
import type { Compression } from "../media-types.js";
import { codecIdOf, type GzipEngine } from "./compression.js";
import { claimPlannerThread } from "./planner-thread.js";
import type { LayerSource, PlannedLayer, PlanOptions } from "./prepare.js";
import { Thread } from "./threads.js";

interface Slot {
  promise: Promise<PlannedLayer | undefined>;
  resolve(plan: PlannedLayer | undefined): void;
  reject(error: unknown): void;
}

function newSlot(): Slot {
  const slot = {} as Slot;
  slot.promise = new Promise((resolve, reject) => Object.assign(slot, { resolve, reject }));
  slot.promise.catch(() => {}); // a layer never asked for may fail unobserved
  return slot;
}

/** Settle a slot: with its plan, or an error, or undefined (the main thread plans it then). */
function settle(slot: Slot | undefined, plan: PlannedLayer | undefined, error?: unknown): void {
  if (error !== undefined) slot?.reject(error);
  else slot?.resolve(plan);
}

/**
 * Plans of a build's layers, made by one worker thread from the first source on, while the main thread,
 * whenever it waits, takes the last source not yet started and plans it itself (steal()): a big tree
 * first does not hold back the small layers after it, and a second thread's start-up is not paid for.
 */
export class LayerPlanner {
  readonly #slots: Slot[];
  readonly #thread: Thread;
  /** Sources [front, back) are not started yet. */
  #front = 0;
  #back: number;

  private constructor(sources: readonly LayerSource[], options: PlanOptions, thread: Thread) {
    this.#slots = sources.map(newSlot);
    this.#back = sources.length;
    this.#thread = thread;
    const feed = (): void => {
      if (this.#front >= this.#back) return;
      const index = this.#front++;
      const slot = this.#slots[index] as Slot;
      thread.request<PlannedLayer | undefined>({ source: sources[index], options }, [], undefined).then(
        (plan) => {
          settle(slot, plan);
          feed();
        },
        (error: unknown) => {
          // A thread that stopped leaves its work to the main thread; a planning error is the build's.
          if (!thread.broken) {
            settle(slot, undefined, error);
            feed();
            return;
          }
          settle(slot, undefined);
          while (this.#front < this.#back) settle(this.#slots[this.#front++], undefined);
        },
      );
    };
    feed();
  }

  /**
   * Start planning `sources`, on the thread startPlannerThread() started ahead or a new one; undefined
   * when the worker's file is missing (a bundler inlined this module).
   */
  static start(sources: readonly LayerSource[], options: PlanOptions): LayerPlanner | undefined {
    const worker = sources.length > 0 ? claimPlannerThread() : undefined;
    return worker && new LayerPlanner(sources, options, new Thread(worker, "layer planner"));
  }

  /**
   * The plan of source `index`, or undefined (planned on the main thread then). Rejects with the error
   * planning met (a missing or unreadable file), as planning on the main thread would.
   */
  plan(index: number): Promise<PlannedLayer | undefined> {
    return this.#slots[index]?.promise ?? Promise.resolve(undefined);
  }

  /**
   * Take the last source the worker has not started: its plan becomes undefined (the caller plans it on
   * this thread). Returns its index, or undefined when every source is started.
   */
  steal(): number | undefined {
    if (this.#front >= this.#back) return undefined;
    const index = --this.#back;
    settle(this.#slots[index], undefined);
    return index;
  }

  /** Stop the worker (at once if it is still listing). */
  async close(): Promise<void> {
    await this.#thread.terminate();
  }
}

/** What a build's layers are planned from: the fields of BuildOptions that decide them. */
export interface PlanningRequest {
  /** Whether the build talks to a registry (for its base or a destination): planning then overlaps that. */
  registry: boolean;
  layers: readonly LayerSource[];
  platformLayers?: readonly { layer: LayerSource }[] | undefined;
  cacheDir?: string | undefined;
  compression?: Compression | undefined;
  compressionLevel?: number | undefined;
  gzipEngine?: GzipEngine | undefined;
  chown?: { uid: number; gid: number } | undefined;
  preserveOwners?: boolean | undefined;
  sourceDateEpoch?: number | undefined;
}

/**
 * Start planning a build's layers on a worker thread, when that pays: a directory among the sources and
 * a registry to talk to meanwhile (the base or a destination). build() calls it, the one place a planner
 * starts. Never throws: anything wrong with the request is build()'s to report, and undefined means
 * "plan on the main thread".
 */
export function startLayerPlanning(request: PlanningRequest): LayerPlanner | undefined {
  try {
    const sources = [...request.layers, ...(request.platformLayers ?? []).map((extra) => extra.layer)];
    const codecId = codecIdOf(request.compression ?? "gzip", request.compressionLevel, request.gzipEngine);
    if (codecId === undefined || !request.registry || !sources.some((layer) => statSync(layer.source).isDirectory())) return undefined;
    return LayerPlanner.start(sources, {
      cacheDir: request.cacheDir ?? defaultCacheDir(),
      codecId,
      chown: request.chown,
      preserveOwners: request.preserveOwners,
      mtime: request.sourceDateEpoch ?? 0,
    });
  } catch {
    return undefined;
  }
}
