/**
 * `build`: a base image (any transport, or `scratch`), local files added as layers, the config edited,
 * the result written to every destination. In the model's terms: resolve the base (build/base.ts) →
 * `mutate.config` → `mutate.append` the built layers (build/layers.ts) → format and annotations
 * (build/image.ts) → `copyImage(image, destinations)`, the one path that writes images. With several
 * platforms, one image per platform and `mutate.index` over them. Layers are planned on a thread, and
 * built and streamed to a registry while the base is resolved.
 */
import { rememberLocation } from "./blob-locations.js";
import { type Base, baseAnnotations, cachingSource, resolveBases } from "./build/base.js";
import { deriveImage } from "./build/image.js";
import { LayerBuilds } from "./build/layers.js";
import { type CheckedRequest, checkRequest, type PlatformLayer } from "./build/options.js";
import { BlobCache, defaultCacheDir } from "./cache.js";
import { copyImage, KnownBlobs, type WriteResult } from "./copy.js";
import { UsageError } from "./errors.js";
import { type Platform, platformMatches } from "./image/descriptor.js";
import type { Image, ImageIndex } from "./image/image.js";
import * as mutate from "./image/mutate.js";
import type { ImageSource } from "./image/source.js";
import type { BuiltLayer, LayerBuildOptions, LayerSource } from "./layer/build.js";
import type { GzipEngine } from "./layer/compression.js";
import { startLayerPlanning } from "./layer/planner.js";
import { type Compression, layerMediaType, type ManifestFormat } from "./media-types.js";
import { type ConfigEdits, createdTimestamp } from "./mutate.js";
import { noProgress } from "./progress.js";
import { openDestination, openSource, parseTransportReference } from "./transport/transport.js";
import type { ImageDestination, TransportOptions } from "./transport/types.js";

export type { PlatformLayer } from "./build/options.js";

/** Everything `build` needs. */
export interface BuildOptions extends TransportOptions {
  /** The base image as a transport reference, or `scratch`. */
  from: string;
  /** Layers added to every platform's image, in order. */
  layers: readonly LayerSource[];
  /** Layers added after the common ones, each to the image of its platform only. */
  platformLayers?: readonly PlatformLayer[];
  config?: ConfigEdits;
  /** Manifest annotations (OCI manifests only). */
  annotations?: Record<string, string>;
  /** Manifest family; default: the base's (Docker stays Docker, OCI stays OCI), OCI for scratch. */
  format?: ManifestFormat;
  /** One platform (the image of a multi-platform base to build on) or several (an index is built); default the host's. */
  platforms?: readonly Platform[];
  compression?: Compression;
  compressionLevel?: number;
  /** The deflate that makes gzip layers: libdeflate (default) or Node's zlib. */
  gzipEngine?: GzipEngine;
  /** Nudge V8's collector while layers are compressed and its heap is small (default true): see LayerBuildOptions. */
  garbageNudges?: boolean;
  chown?: { uid: number; gid: number };
  /** Keep on-disk owners in new layers (`import`). */
  preserveOwners?: boolean;
  /** Hears, in one line each, what a layer source holds that its layer cannot keep. */
  warn?: (message: string) => void;
  /** Timestamp for `created`, history and every tar entry; default 0 (the epoch). */
  sourceDateEpoch?: number;
  /** Destinations as transport references (a bare reference means a registry). */
  tags: readonly string[];
}

/** What a build produced. */
export interface BuildResult {
  /** The digest of the top manifest (an index for a multi-platform build), the same for every destination. */
  digest: string;
  /** The top manifest's bytes. */
  manifest: Buffer;
  /** The config bytes of each platform's image. */
  configs: Buffer[];
  written: WriteResult[];
}

/** The layer engine's options for a build. */
function layerOptionsOf(options: BuildOptions, cacheDir: string, signal: AbortSignal): LayerBuildOptions {
  const compression = options.compression ?? "gzip";
  const layerOptions: LayerBuildOptions = {
    cacheDir,
    compression,
    // The media type follows the manifest family, known once the base is: the layers get it then.
    mediaType: layerMediaType(options.format ?? "oci", compression),
    mtime: options.sourceDateEpoch ?? 0,
    progress: options.progress ?? noProgress,
    signal: options.signal ? AbortSignal.any([options.signal, signal]) : signal,
  };
  if (options.compressionLevel !== undefined) layerOptions.level = options.compressionLevel;
  if (options.gzipEngine !== undefined) layerOptions.gzipEngine = options.gzipEngine;
  if (options.garbageNudges !== undefined) layerOptions.garbageNudges = options.garbageNudges;
  if (options.chown) layerOptions.chown = options.chown;
  if (options.preserveOwners) layerOptions.preserveOwners = true;
  if (options.warn) layerOptions.warn = options.warn;
  return layerOptions;
}

/** Everything a running build holds, released by finish(). */
class BuildRun {
  readonly cacheDir: string;
  readonly stop = new AbortController();
  readonly destinations: ImageDestination[] = [];
  source: ImageSource | undefined;
  layers: LayerBuilds | undefined;
  readonly planner;

  constructor(
    readonly options: BuildOptions,
    readonly request: CheckedRequest,
  ) {
    this.cacheDir = options.cacheDir ?? defaultCacheDir();
    // Layers are listed and fingerprinted on a worker thread while the base is resolved.
    this.planner = startLayerPlanning({
      ...options,
      layers: request.allLayers,
      platformLayers: [],
      cacheDir: this.cacheDir,
      registry: request.registry,
    });
  }

  /** The base of every platform, read through the blob cache. */
  async resolve(): Promise<Base[]> {
    const { options, request } = this;
    if (options.from !== "scratch") {
      const opened = await openSource(parseTransportReference(options.from), { ...options, cacheDir: this.cacheDir });
      this.source = cachingSource(opened, new BlobCache(this.cacheDir));
    }
    return resolveBases(this.source, request.platforms, request.requested);
  }

  /** Layers still being built stop, and their uploads end (cancelled, no blob committed), before the destinations are given up. */
  async fail(error: unknown): Promise<void> {
    this.stop.abort(error);
    await this.layers?.settled();
    await Promise.all(this.destinations.map((d) => d.abort().catch(() => {})));
  }

  async finish(): Promise<void> {
    await this.planner?.close();
    await this.source?.close().catch(() => {});
  }
}

/** The built image of every base, each with the layers built for it (common ones, then its own). */
async function imagesOf(run: BuildRun, bases: readonly Base[], common: Promise<Awaited<ReturnType<LayerBuilds["build"]>>>) {
  const { options, request } = run;
  const format = options.format ?? bases[0]?.format ?? "oci";
  if (options.annotations && Object.keys(options.annotations).length && format === "docker") {
    throw new UsageError("annotations need an OCI manifest", { hint: "set `format` to oci, or drop `annotations`" });
  }
  const layerType = layerMediaType(format, options.compression ?? "gzip");
  const created = createdTimestamp(options.sourceDateEpoch);
  const images: { platform: Platform; image: Image; built: BuiltLayer[] }[] = [];
  for (const base of bases) {
    const extras = request.platformLayers.filter((extra) => platformMatches(base.platform, extra.platform)).map((extra) => extra.layer);
    const layers = [...(await common), ...(await (run.layers as LayerBuilds).build(extras, layerType))];
    const named = run.source && base.manifestDigest ? baseAnnotations(parseTransportReference(options.from), base.manifestDigest) : {};
    const image = deriveImage(base.image, {
      edits: options.config ?? {},
      created,
      layers: layers.map(({ layer, built }) => ({
        layer: { ...layer, descriptor: { ...layer.descriptor, mediaType: layerType } },
        createdBy: built.createdBy,
      })),
      format,
      annotations: { ...named, ...(options.annotations ?? {}) },
    });
    images.push({ platform: base.platform, image, built: layers.map((l) => l.built) });
  }
  return { format, images };
}

/** Build an image (or an index of images) and write it to every destination; nothing partial is left on failure. */
export async function build(options: BuildOptions): Promise<BuildResult> {
  const request = checkRequest(options);
  const run = new BuildRun(options, request);
  try {
    const resolving = run.resolve();
    resolving.catch(() => {}); // awaited below, after the builds have started
    for (const target of request.targets) run.destinations.push(await openDestination(target, { ...options, cacheDir: run.cacheDir }));
    // The first registry destination receives each new layer while it is compressed (upload overlaps the build).
    const streamingTo = run.destinations.find((d) => d.putBlobStreaming);
    const layerOptions = layerOptionsOf(options, run.cacheDir, run.stop.signal);
    run.layers = new LayerBuilds(request.allLayers, layerOptions, run.planner, streamingTo, resolving);
    // The layers every platform shares are built, and streamed, while the base is resolved.
    const common = run.layers.build(options.layers, layerOptions.mediaType);
    common.catch(() => {}); // awaited below; a base that fails is reported first
    const { format, images } = await imagesOf(run, await resolving, common);
    const top: Image | ImageIndex =
      images.length === 1
        ? (images[0] as (typeof images)[number]).image
        : mutate.index(
            images.map(({ image, platform }) => ({ image, platform })),
            { format, annotations: options.annotations },
          );
    const written = await copyImage(top, run.destinations, { ...options, known: new KnownBlobs() });
    await rememberBuilt(
      run,
      images.flatMap((i) => i.built),
    );
    const progress = options.progress ?? noProgress;
    for (const w of written) progress({ phase: "done", kind: "manifest", id: w.digest, bytes: w.size, target: w.destination });
    const raw = await top.rawManifest();
    return { digest: raw.digest, manifest: raw.bytes, configs: await Promise.all(images.map((i) => i.image.rawConfig())), written };
  } catch (error) {
    await run.fail(error);
    throw error;
  } finally {
    await run.finish();
  }
}

/** Built layers are remembered where they were pushed, for a mount when they go to another repository. */
async function rememberBuilt(run: BuildRun, built: readonly BuiltLayer[]): Promise<void> {
  for (const destination of run.destinations) {
    const here = destination.location;
    if (here) for (const b of built) await rememberLocation(run.cacheDir, b.descriptor.digest, here);
  }
}
