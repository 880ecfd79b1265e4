/**
 * A build's use of the registry layer cache (`cacheRepo`). A directory layer this machine has no record of
 * (a fresh CI runner) is planned, its diffID computed from the plan (reading and hashing the files, no
 * compression), and its entry looked up: on a verified hit the layer is the cached blob, which a
 * destination on the same registry mounts and any other reads from the cache repository; nothing is
 * compressed or uploaded. A miss is built as without a cache. Once the image is written, every directory
 * layer the cache has no entry for is stored, its blob mounted from the destination that received it.
 */
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Digest } from "../digest.js";
import { UsageError } from "../errors.js";
import type { RegistryLocation } from "../image/source.js";
import { type BuiltLayer, createdByOf, type LayerBuildOptions, type LayerSource, planOptionsOf } from "../layer/build.js";
import { codecIdOf } from "../layer/compression.js";
import { type PlannedLayer, planKeyOf, planLayer } from "../layer/prepare.js";
import { layerMediaType } from "../media-types.js";
import { parseReference } from "../reference.js";
import { registryClient } from "../registry/client.js";
import type { TransportOptions } from "../transport/types.js";
import { diffIDOfPlan } from "./diff-id.js";
import type { LayerCacheInputs } from "./entry.js";
import { RegistryLayerCache } from "./registry.js";

/** What the cache decided for one layer: the plan to build from, or the cached layer; and its key, when it has one. */
export interface Consulted {
  /** The plan (the planner's, or made here when the planner had none for these options). */
  plan: PlannedLayer;
  /** The layer taken from the cache, when the cache held it. */
  hit?: BuiltLayer | undefined;
  /** The key's inputs, when they are known before the build (a directory layer looked up). */
  inputs?: LayerCacheInputs | undefined;
}

/** A layer this build made or reused, to be stored in the cache once the image is written. */
interface Made {
  built: BuiltLayer;
  /** Whether the look-up before the build found nothing (no need to look again before storing). */
  missed: boolean;
}

/** Parse `REGISTRY/REPOSITORY`: a repository, without tag or digest. */
export function parseCacheRepo(text: string): { registry: string; repository: string } {
  const reference = parseReference(text);
  if (reference.tag !== undefined || reference.digest !== undefined) {
    throw new UsageError(`cache repository ${text}: names a tag or digest`, {
      hint: "give REGISTRY/REPOSITORY, e.g. registry.example/team/app-cache",
    });
  }
  return { registry: reference.registry, repository: reference.repository };
}

/** The registry layer cache as one build uses it. */
export class BuildLayerCache {
  readonly #cache: RegistryLayerCache;
  readonly #options: LayerBuildOptions;
  readonly #codecId: string;
  readonly #made: Made[] = [];

  private constructor(cache: RegistryLayerCache, options: LayerBuildOptions, codecId: string) {
    this.#cache = cache;
    this.#options = options;
    this.#codecId = codecId;
  }

  /**
   * The cache in `cacheRepo` for a build with these layer options; its registry is reached with the
   * transport options (the destinations' credentials, TLS settings and user agent). Undefined when the
   * codec has no stable id (then no key can be made).
   */
  static open(cacheRepo: string, layerOptions: LayerBuildOptions, transport: TransportOptions): BuildLayerCache | undefined {
    const { registry, repository } = parseCacheRepo(cacheRepo);
    const codecId = codecIdOf(layerOptions.compression, layerOptions.level, layerOptions.gzipEngine);
    if (codecId === undefined) return undefined;
    const client = registryClient(registry, {
      insecureRegistries: transport.insecureRegistries,
      userAgent: transport.userAgent,
      credentials: transport.credentials,
    });
    return new BuildLayerCache(new RegistryLayerCache(client, repository, layerOptions.warn), layerOptions, codecId);
  }

  /** The cache repository, where a destination on its registry mounts cached blobs from. */
  get location(): RegistryLocation {
    return this.#cache.location;
  }

  /** The inputs of a layer's key. The media type is the OCI one of the compression: the manifest family does not change the blob. */
  #inputs(diffID: Digest): LayerCacheInputs {
    return { diffID, mediaType: layerMediaType("oci", this.#options.compression), codecId: this.#codecId };
  }

  /**
   * Decide a layer before it is built: a directory this machine has no previous build of is looked up by
   * the diffID of its plan. Other layers (a rebuild, which reuses its own blocks; a tarball) are built.
   */
  async consult(source: LayerSource, planned: PlannedLayer | undefined): Promise<Consulted> {
    const planOptions = planOptionsOf(this.#options, this.#codecId);
    const plan = planned?.key === planKeyOf(planOptions) ? planned : planLayer(source, planOptions);
    if (plan.kind !== "tree" || plan.previous !== undefined) return { plan };
    const diffID = await diffIDOfPlan(plan.packed, this.#options.signal);
    const inputs = this.#inputs(diffID);
    const found = await this.#cache.lookup(inputs, this.#options.signal);
    if (!found) return { plan, inputs };
    const tarSize = plan.packed.cuts[plan.packed.cuts.length - 1] as number;
    this.#options.progress?.({ phase: "skipped", kind: "build", id: source.source, bytes: tarSize, total: tarSize });
    const descriptor = { ...found.descriptor, mediaType: this.#options.mediaType };
    const hit: BuiltLayer = {
      descriptor,
      diffID,
      createdBy: createdByOf(source, this.#options),
      tarSize,
      blocks: 0,
      reusedBlocks: 0,
      trustedBlocks: 0,
      unpackedBlocks: 0,
      unchanged: false,
      fresh: false,
      open: () => this.#openCached(found.descriptor),
      // Nothing of it is kept here: each open() reads the blob from the cache repository again.
      repair: async () => {},
    };
    return { plan, hit, inputs };
  }

  /** A cached blob as a stream at once (the layer engine's `open` is synchronous), read from the cache repository. */
  #openCached(descriptor: BuiltLayer["descriptor"]): Readable {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    this.#cache.openBlob(descriptor, this.#options.signal).then(
      (blob) => pipeline(blob, out).catch(() => {}), // a failure destroys `out`, and whoever reads it hears it
      (error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return out;
  }

  /** Note a layer built from a directory (`missed`: its look-up found nothing), to be stored once the image is written. */
  built(built: BuiltLayer, consulted: Consulted): void {
    if (consulted.hit || consulted.plan.kind === "tarball") return;
    this.#made.push({ built, missed: consulted.inputs !== undefined });
  }

  /**
   * Store an entry for every directory layer the cache lacks, its blob mounted from `written` (a repository
   * of the cache's registry that received it) or uploaded from the local cache. Never throws but for an abort.
   */
  async store(written: readonly RegistryLocation[]): Promise<void> {
    const here = this.#cache.location;
    const from = written.find((w) => w.registry === here.registry)?.repository;
    const seen = new Set<string>();
    for (const { built, missed } of this.#made) {
      if (seen.has(built.diffID)) continue;
      seen.add(built.diffID);
      const inputs = this.#inputs(built.diffID);
      // A layer built without a look-up (a rebuild, an unchanged layer) may have its entry already.
      if (!missed && (await this.#cache.lookup(inputs, this.#options.signal))) continue;
      await this.#cache.store(inputs, built.descriptor, { from, open: () => built.open() }, this.#options.signal);
    }
  }
}
