/**
 * The planner's worker thread, which can be started before the code that plans with it has loaded. A
 * worker takes ~45 ms to boot; the CLI's launcher starts it before any ES module loads (bin/planner-thread.js,
 * adopted here), or the CLI as its first act for a build, so that boot overlaps the loading of the build
 * code instead of following it. Kept to node built-ins, so that importing it costs next to nothing.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

const workerUrl = new URL("./planner-worker.js", import.meta.url);

interface Started {
  worker: Worker;
  exited: boolean;
}

let early: Started | undefined;

/** Where the launcher (bin/planner-thread.js) leaves a thread it started before any ES module loaded. */
const handover = Symbol.for("ocify.plannerThread");

/** The launcher's thread, taken (once). */
function fromLauncher(): Started | undefined {
  const global = globalThis as { [handover]?: Started };
  const started = global[handover];
  delete global[handover];
  return started;
}

/**
 * Start the planner thread now, for the build about to be set up (returned, for tests). The thread waits
 * for work; left unclaimed (the build plans on its main thread, or fails first), it holds nothing open.
 */
export function startPlannerThread(): Worker | undefined {
  early ??= fromLauncher();
  if (early) return early.worker;
  if (!existsSync(fileURLToPath(workerUrl))) return undefined;
  const started = { worker: new Worker(workerUrl), exited: false };
  started.worker.unref();
  started.worker.on("error", () => {}); // "exit" follows; whoever claims the thread then gets a new one
  started.worker.once("exit", () => {
    started.exited = true;
  });
  early = started;
  return started.worker;
}

/** The thread started ahead, else a new one; undefined when the worker's file is missing (a bundler inlined the planner). */
export function claimPlannerThread(): Worker | undefined {
  const started = early ?? fromLauncher();
  early = undefined;
  if (started && !started.exited) {
    started.worker.ref();
    return started.worker;
  }
  return existsSync(fileURLToPath(workerUrl)) ? new Worker(workerUrl) : undefined;
}
