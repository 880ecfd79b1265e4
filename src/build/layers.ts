/**
 * The layers a build adds, built from local files by the layer engine and handed to the model as
 * `Layer`s. Each is built once (several platforms may share it), one at a time (one pipeline in memory),
 * in the order their plans arrive: a small layer need not wait for the listing of a big tree before it.
 * A new layer is streamed to the first registry destination while it is compressed; the copy then waits
 * for that upload instead of sending the blob (the layer's `pending` hint).
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { finished } from "node:stream/promises";
import { knownLocations } from "../blob-locations.js";
import type { BuildLayerCache } from "../cache-repo/layers.js";
import type { Descriptor } from "../image/descriptor.js";
import type { Layer } from "../image/layer.js";
import type { RegistryLocation } from "../image/source.js";
import { type BuiltLayer, buildLayer, type LayerBuildOptions, type LayerSource, type PlannedLayer } from "../layer/build.js";
import type { LayerPlanner } from "../layer/planner.js";
import { isResumableUploadFailure } from "../registry/upload.js";
import type { ImageDestination } from "../transport/types.js";

/**
 * What names a layer's bytes before they are known: its source and everything that shapes them. A push
 * killed while it streamed the layer is continued by the next run under this key (registry/upload.ts),
 * which checks that the bytes made again are the ones sent.
 */
function layerUploadKey(layer: LayerSource, options: LayerBuildOptions): string {
  const { compression, level, gzipEngine, chown, preserveOwners, mtime } = options;
  const shape = JSON.stringify([resolve(layer.source), layer.dest, compression, level, gzipEngine, chown, preserveOwners, mtime]);
  return createHash("sha256").update(shape).digest("hex");
}

/** A built layer, and the end of its upload when it was streamed to a registry while it was built. */
interface StreamedLayer {
  built: BuiltLayer;
  uploaded?: Promise<void> | undefined;
  /** The registry layer cache's repository, for a layer taken from it (a destination mounts it from there). */
  from?: RegistryLocation | undefined;
}

/**
 * Build a layer while uploading it to a registry. The upload needs the digest only at its end, so it starts
 * with the first compressed byte; `tee` resolves once the stream is consumed (buildLayer awaits it), and the
 * upload is finished with the digest once buildLayer has it. The layer is returned as soon as it is built,
 * with the upload's end: while the registry syncs and commits the blob, the next layer is built and the
 * config is sent. A failed upload fails the copy that waits for it. The blob is committed only once `base`
 * settles well: a build whose base cannot be resolved leaves no blob behind.
 */
async function buildStreaming(
  layer: LayerSource,
  options: LayerBuildOptions,
  destination: ImageDestination,
  planned: Promise<PlannedLayer | undefined>,
  base: Promise<unknown>,
): Promise<StreamedLayer> {
  let resolveFinal: (descriptor: Descriptor) => void = () => {};
  let rejectFinal: (error: unknown) => void = () => {};
  const final = new Promise<Descriptor>((resolve, reject) => {
    resolveFinal = resolve;
    rejectFinal = reject;
  });
  // Rejected when the base or the build fails, whether or not an upload is there to wait for it (a layer
  // taken from the cache starts none): the failure itself is reported by whoever awaits the build.
  final.catch(() => {});
  let upload: Promise<void> | undefined;
  const tee = async (content: import("node:stream").Readable): Promise<void> => {
    upload = (destination.putBlobStreaming as NonNullable<ImageDestination["putBlobStreaming"]>).call(
      destination,
      options.mediaType,
      content,
      final,
      layerUploadKey(layer, options),
    );
    upload.catch(() => {});
    try {
      await Promise.race([finished(content), upload.then(() => finished(content))]);
    } catch (error) {
      // An upload the network broke does not stop the build: the layer goes on into the cache, and the
      // copy sends the rest from there (copy.ts). Any other failure (the build's own, a refusal) stops it.
      const failure = await upload.then(
        () => error,
        (uploadError: unknown) => uploadError,
      );
      if (!isResumableUploadFailure(failure)) throw failure;
    }
  };
  // A layer to build will be uploaded: the session opens while its build is set up.
  planned.then(
    (plan) => plan && plan.kind !== "unchanged" && !upload && destination.openUpload?.(),
    () => {},
  );
  try {
    const built = await buildLayer(layer, { ...options, tee }, planned);
    base.then(
      () => resolveFinal(built.descriptor),
      (error: unknown) => rejectFinal(error),
    );
    // No upload (the layer is the recorded one, or its blocks are): the copy asks the registry.
    upload?.catch(() => {}); // observed by the copy; the build may fail elsewhere first
    return { built, uploaded: upload };
  } catch (error) {
    rejectFinal(error);
    await upload?.catch(() => {});
    throw error;
  }
}

/** The layers of one build: each built once, in plan order, streamed to `streamingTo` when there is one. */
export class LayerBuilds {
  readonly #sources: readonly LayerSource[];
  readonly #options: LayerBuildOptions;
  readonly #planner: LayerPlanner | undefined;
  readonly #streamingTo: ImageDestination | undefined;
  readonly #base: Promise<unknown>;
  readonly #cache: BuildLayerCache | undefined;
  readonly #built = new Map<string, Promise<StreamedLayer>>();
  readonly #uploads: Promise<unknown>[] = [];

  /**
   * `sources` are every layer the build may add (in the planner's order), `base` settles when the base is
   * resolved (a streamed blob is committed only then), `streamingTo` receives each new layer while it is
   * compressed, `cache` is the registry layer cache to take layers from and store them in.
   */
  constructor(
    sources: readonly LayerSource[],
    options: LayerBuildOptions,
    planner: LayerPlanner | undefined,
    streamingTo: ImageDestination | undefined,
    base: Promise<unknown>,
    cache?: BuildLayerCache,
  ) {
    this.#sources = sources;
    this.#options = options;
    this.#planner = planner;
    this.#streamingTo = streamingTo;
    this.#base = base;
    this.#cache = cache;
  }

  #planOf(layer: LayerSource): Promise<PlannedLayer | undefined> {
    return this.#planner?.plan(this.#sources.indexOf(layer)) ?? Promise.resolve(undefined);
  }

  #layerFor(layer: LayerSource): Promise<StreamedLayer> {
    const key = `${layer.source}\0${layer.dest}`;
    let built = this.#built.get(key);
    if (!built) {
      built = this.#cache ? this.#throughCache(layer, this.#cache) : this.#buildFrom(layer, this.#planOf(layer));
      this.#built.set(key, built);
      this.#uploads.push(built.then((b) => b.uploaded).catch(() => {})); // failures are reported by whoever awaits the layer
    }
    return built;
  }

  #buildFrom(layer: LayerSource, planned: Promise<PlannedLayer | undefined>): Promise<StreamedLayer> {
    return this.#streamingTo
      ? buildStreaming(layer, this.#options, this.#streamingTo, planned, this.#base)
      : buildLayer(layer, this.#options, planned).then((b) => ({ built: b }));
  }

  /** A layer the registry layer cache holds is taken from it; any other is built, and noted for the cache. */
  async #throughCache(layer: LayerSource, cache: BuildLayerCache): Promise<StreamedLayer> {
    const consulted = await cache.consult(layer, await this.#planOf(layer));
    if (consulted.hit) return { built: consulted.hit, from: cache.location };
    const streamed = await this.#buildFrom(layer, Promise.resolve(consulted.plan));
    cache.built(streamed.built, consulted);
    return streamed;
  }

  /** The model's view of a built layer: its blob in the cache, where it was pushed before, its upload. */
  #asLayer({ built, uploaded, from }: StreamedLayer, mediaType: string): Layer {
    const descriptor = { ...built.descriptor, mediaType };
    return {
      descriptor,
      kind: "layer",
      diffID: async () => built.diffID,
      open: async () => built.open(),
      repair: () => built.repair(),
      locations: [...(from ? [from] : []), ...knownLocations(this.#options.cacheDir, descriptor.digest)],
      fresh: built.fresh,
      pending: uploaded && this.#streamingTo ? { destination: this.#streamingTo, done: uploaded } : undefined,
    };
  }

  /**
   * Build `wanted` in the order their plans arrive; with nothing ready, this thread plans a source the
   * planner thread has not started yet instead of waiting. Returns them as layers of `mediaType`, with
   * what the engine reported of each.
   */
  async build(wanted: readonly LayerSource[], mediaType: string): Promise<{ layer: Layer; built: BuiltLayer }[]> {
    const result: StreamedLayer[] = [];
    const settled = (layer: LayerSource, i: number): Promise<number> =>
      this.#planOf(layer).then(
        () => i,
        () => i,
      );
    const ready = new Map(wanted.map((layer, i) => [i, settled(layer, i)]));
    const noneYet = Promise.resolve(-1);
    while (ready.size > 0) {
      let i = await Promise.race([...ready.values(), noneYet]);
      if (i < 0) {
        this.#planner?.steal();
        i = await Promise.race(ready.values());
      }
      ready.delete(i);
      result[i] = await this.#layerFor(wanted[i] as LayerSource);
    }
    return result.map((streamed) => ({ layer: this.#asLayer(streamed, mediaType), built: streamed.built }));
  }

  /** Store in the registry layer cache the layers it lacks, once the image is in `written` (its registry repositories). */
  async storeInCache(written: readonly RegistryLocation[]): Promise<void> {
    await this.#cache?.store(written);
  }

  /** Wait until every upload started has ended (after a failure: cancelled, nothing committed). */
  async settled(): Promise<void> {
    await Promise.all([...this.#built.values()].map((b) => b.catch(() => {})));
    await Promise.all(this.#uploads);
  }
}
