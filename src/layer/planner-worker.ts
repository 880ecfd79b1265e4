/**
 * A planner thread: lists, stats and fingerprints the layer sources it is asked for (planLayer) while the
 * main thread loads the registry client and resolves the base image, and answers each request with the
 * plan. A tarball
 * is left to the main thread (the answer is undefined), which plans it while reading it. It may be
 * started before there is work for it (planner-thread.ts), so each request carries its options.
 */
import { type LayerSource, type PlanOptions, planLayer } from "./prepare.js";
import { serveRequests } from "./threads.js";

serveRequests((job: { source: LayerSource; options: PlanOptions }) => {
  const plan = planLayer(job.source, job.options);
  return { result: plan.kind === "tarball" ? undefined : plan };
});
