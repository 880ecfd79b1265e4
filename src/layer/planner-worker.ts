/**
 * A planner thread: lists, stats and fingerprints the layer sources it is sent (planLayer) while the main
 * thread loads the registry client and resolves the base image, and posts each plan as soon as it is
 * made (and, before a changed layer's plan, the blocks its blob starts with: LayerHead). A tarball is
 * left to the main thread, which plans it while reading it. `null` ends the thread. It may be started
 * before there is work for it (planner-thread.ts, bin/planner-thread.js), so each job carries its options.
 */
import { parentPort } from "node:worker_threads";
import { errorToData } from "../errors.js";
import { type LayerSource, type PlanOptions, planLayer } from "./prepare.js";

const port = parentPort as NonNullable<typeof parentPort>;

port.on("message", (job: { index: number; source: LayerSource; options: PlanOptions } | null) => {
  if (job === null) {
    port.close();
    return;
  }
  try {
    const plan = planLayer(job.source, job.options, (head) => port.postMessage({ index: job.index, head }));
    port.postMessage({ index: job.index, plan: plan.kind === "tarball" ? undefined : plan });
  } catch (error) {
    port.postMessage({ index: job.index, error: errorToData(error) });
  }
});
