// The launcher's half of src/layer/planner-thread.ts: for a build with layers, bin/ocify.js starts the
// planner's worker thread before any ES module loads, so that its ~50 ms boot overlaps their loading. The
// thread is handed over under a global symbol; startPlannerThread() adopts it. CommonJS, node built-ins only.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");
const { Worker } = require("node:worker_threads");

const handover = Symbol.for("ocify.plannerThread");

/** Start the planner thread for the module side to adopt; nothing when its file is missing (a bundled build). */
function startPlannerThread() {
  const file = join(__dirname, "..", "dist", "layer", "planner-worker.js");
  if (globalThis[handover] || !existsSync(file)) return;
  const started = { worker: new Worker(file), exited: false };
  started.worker.unref();
  started.worker.on("error", () => {}); // "exit" follows; the module side then starts another
  started.worker.once("exit", () => {
    started.exited = true;
  });
  globalThis[handover] = started;
}

module.exports = { startPlannerThread };
