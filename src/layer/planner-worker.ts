/**
 * The planner thread: lists, stats and fingerprints each layer's sources (planLayer) while the main
 * thread loads the registry client and resolves the base image, and posts each plan as soon as it is
 * made. A tarball is left to the main thread, which plans it while reading it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { errorToData } from "../errors.js";
import { type LayerSource, type PlanOptions, planLayer } from "./prepare.js";

const { sources, options } = workerData as { sources: LayerSource[]; options: PlanOptions };
const port = parentPort as NonNullable<typeof parentPort>;

for (const [index, source] of sources.entries()) {
  try {
    const plan = planLayer(source, options);
    port.postMessage({ index, plan: plan.kind === "tarball" ? undefined : plan });
  } catch (error) {
    port.postMessage({ index, error: errorToData(error) });
  }
}
