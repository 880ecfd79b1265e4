/**
 * The public entry of Dockerfile builds: the Dockerfile machinery (its tar reader among it) loads when a
 * Dockerfile is built, not when any other command starts.
 */
import type { BuildResult } from "./build.js";
import type { DockerfileBuildOptions } from "./dockerfile/build.js";

export type { DockerfileBuildOptions } from "./dockerfile/build.js";

/** Build a Dockerfile (with no RUN) and write the image, or an index of images, to every destination. */
export async function buildDockerfile(options: DockerfileBuildOptions): Promise<BuildResult> {
  const { buildDockerfile: build } = await import("./dockerfile/build.js");
  return build(options);
}
