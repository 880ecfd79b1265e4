/**
 * What build() checks before any work, so that a wrong request fails in one line and leaves nothing: the
 * destinations parse and can be written where they point, every per-platform layer names a platform being
 * built, an index is not asked of a docker-archive, every layer source exists.
 */
import { UsageError } from "../errors.js";
import { formatPlatform, hostPlatform, type Platform, platformMatches } from "../image/descriptor.js";
import { isStandardInput, isStreamSource, type LayerSource, statLayerSource } from "../layer/plan.js";
import { checkDestination, parseTransportReference } from "../transport/transport.js";
import type { TransportReference } from "../transport/types.js";

/** A layer added only to one platform's image of a multi-platform build. */
export interface PlatformLayer {
  platform: Platform;
  layer: LayerSource;
}

/** The parts of BuildOptions checked here. */
export interface BuildRequest {
  from: string;
  tags: readonly string[];
  layers: readonly LayerSource[];
  platformLayers?: readonly PlatformLayer[] | undefined;
  platforms?: readonly Platform[] | undefined;
}

/** A request found sound, with what it resolves to. */
export interface CheckedRequest {
  targets: TransportReference[];
  platforms: readonly Platform[];
  /** Whether platforms were asked for (a single-platform base must then be one of them). */
  requested: boolean;
  platformLayers: readonly PlatformLayer[];
  /** Every layer the build may add: the common ones, then the per-platform ones (the planner's order). */
  allLayers: LayerSource[];
  /** Whether the build talks to a registry (its base or a destination). */
  registry: boolean;
}

/** Check a build request; throws a UsageError (or the layer source's InputError) naming the option at fault. */
export function checkRequest(request: BuildRequest): CheckedRequest {
  if (request.tags.length === 0) {
    throw new UsageError("no destination given", { hint: "give `tags` a destination: a registry, docker-archive:FILE, oci:DIR…" });
  }
  const targets = request.tags.map((tag) => parseTransportReference(tag));
  for (const target of targets) checkDestination(target);
  const platforms = request.platforms?.length ? request.platforms : [hostPlatform()];
  const platformLayers = request.platformLayers ?? [];
  for (const extra of platformLayers) {
    if (!platforms.some((p) => platformMatches(p, extra.platform) && platformMatches(extra.platform, p))) {
      throw new UsageError(`\`platformLayers\` ${formatPlatform(extra.platform)}: that platform is not being built`, {
        hint: "add it to `platforms`",
      });
    }
  }
  if (platforms.length > 1 && targets.some((t) => t.transport === "docker-archive")) {
    throw new UsageError("a docker-archive holds one image, not a multi-platform index", {
      hint: "write it to a registry, oci: or oci-archive:, or build one platform",
    });
  }
  const allLayers = [...request.layers, ...platformLayers.map((p) => p.layer)];
  checkLayerSources(allLayers);
  const registry = request.from !== "scratch" || targets.some((t) => t.transport === "docker");
  return { targets, platforms, requested: Boolean(request.platforms?.length), platformLayers, allLayers, registry };
}

/** Every layer source exists (a stream is opened when it is read), and standard input is read at most once. */
function checkLayerSources(layers: readonly LayerSource[]): void {
  for (const layer of layers) if (!isStreamSource(layer.source)) statLayerSource(layer.source);
  const streamed = layers.filter((layer) => isStandardInput(layer.source));
  if (new Set(streamed.map((layer) => `${layer.source}\0${layer.dest}`)).size > 1)
    throw new UsageError("standard input can be read only once", { hint: "give at most one layer from standard input (-)" });
}
