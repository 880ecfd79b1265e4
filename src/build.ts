/**
 * `ocify build`: a base image (any transport, or `scratch`), local artifacts added as layers, the config
 * edited, the result written to every destination. Base layers are never downloaded for a registry that
 * has them or can mount them; otherwise they are fetched once, verified, into the blob cache.
 * With several platforms, one image is built per platform and an index ties them together.
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { knownLocations, rememberLocation } from "./blob-locations.js";
import { readBounded } from "./bounded.js";
import { BlobCache, defaultCacheDir } from "./cache.js";
import { type BlobPlan, forDestination, KnownBlobs, pushBlobs, type WriteResult } from "./copy.js";
import { type Digest, digestOf } from "./digest.js";
import { PlatformNotFoundError, UsageError } from "./errors.js";
import { type ImageConfig, parseImageConfig } from "./image/config.js";
import { type Descriptor, formatPlatform, hostPlatform, type Platform, platformMatches } from "./image/descriptor.js";
import {
  encodeJson,
  type ImageIndex,
  type ImageManifest,
  maxManifestBytes,
  parseImageManifest,
  type RawManifest,
  rawManifest,
} from "./image/manifest.js";
import { selectImage } from "./image/select.js";
import {
  AbandonedUpload,
  type BuiltLayer,
  buildLayer,
  type LayerBuildOptions,
  type LayerHead,
  type LayerSource,
  type PlannedLayer,
} from "./layer/build.js";
import { isStandardInput, isStreamSource, statLayerSource } from "./layer/plan.js";
import { type LayerPlanner, startLayerPlanning } from "./layer/planner.js";
import {
  type Compression,
  convertLayerMediaType,
  familyMediaTypes,
  isIndexMediaType,
  layerMediaType,
  type ManifestFormat,
  MediaType,
} from "./media-types.js";
import { baseAnnotations, type ConfigEdits, createdTimestamp, emptyConfig, mutateConfig } from "./mutate.js";
import { noProgress } from "./progress.js";
import {
  checkDestination,
  type ImageDestination,
  type ImageSource,
  openDestination,
  openSource,
  parseTransportReference,
  type TransportOptions,
} from "./transport/transport.js";

/** A layer added only to one platform's image of a multi-platform build. */
export interface PlatformLayer {
  platform: Platform;
  layer: LayerSource;
}

/** Everything `ocify build` needs. */
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
  chown?: { uid: number; gid: number };
  /** Keep on-disk owners in new layers (`ocify import`). */
  preserveOwners?: boolean;
  /** Hears, in one line each, what a layer source holds that its layer cannot keep. */
  warn?: (message: string) => void;
  /** Timestamp for `created`, history and every tar entry; default 0 (the epoch). */
  sourceDateEpoch?: number;
  /** Destinations as transport references (a bare reference means a registry). */
  tags: readonly string[];
  /**
   * The layers already being planned, by startLayerPlanning(options) (the CLI starts it before loading
   * the rest of the build code). build() uses it, and stops it when done.
   */
  planner?: LayerPlanner | undefined;
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

interface BaseImage {
  platform: Platform;
  manifest?: ImageManifest;
  manifestDigest?: string;
  config: ImageConfig;
  format: ManifestFormat;
}

interface BuiltImage {
  platform: Platform;
  manifest: RawManifest;
  config: Buffer;
  blobs: BlobPlan[];
  /** The layers built for it (not the base's). */
  built: BuiltLayer[];
}

/**
 * A base image's config. From a registry, it is kept in the blob cache, and later builds read it from
 * there: a config is named by its digest, so a kept one is the same bytes (checked again on reading). A
 * rebuild then spends one round trip less before its image can be put together. A damaged entry is
 * fetched again and replaced.
 */
async function readBaseConfig(source: ImageSource, descriptor: Descriptor, cache: BlobCache): Promise<Buffer> {
  const what = `config of ${source.description}`;
  const keep = source.location !== undefined;
  const kept = keep && descriptor.size <= maxManifestBytes ? cache.readSmall(descriptor, what) : undefined;
  if (kept) return kept;
  const bytes = await readBounded(await source.getBlob(descriptor), maxManifestBytes, what);
  // Keeping it is only a shortcut for the next build: a cache that cannot be written changes nothing.
  if (keep) await cache.store(descriptor, Readable.from([bytes]), what).catch(() => {});
  return bytes;
}

/**
 * Resolve the base image of every platform. It runs beside the build of the layers all platforms share;
 * an absent platform or an unreadable base still fails the build before anything is written to a
 * destination (the builds are stopped and their uploads cancelled). A single-platform base is taken as it
 * is unless platforms were asked for (`requested`): then it must be one of them, as an index must have them.
 */
async function resolveBases(
  source: ImageSource | undefined,
  platforms: readonly Platform[],
  requested: boolean,
  cache: BlobCache,
): Promise<{ bases: BaseImage[]; index?: RawManifest }> {
  if (!source) return { bases: platforms.map((platform) => ({ platform, config: emptyConfig(platform), format: "oci" })) };
  const top = await source.getManifest();
  const index = isIndexMediaType(top.mediaType);
  const read = (digest: Digest) => source.getManifest(digest);
  const bases: BaseImage[] = [];
  for (const platform of platforms) {
    // From an index, the new image's platform is its base's entry's (with variant, os.version, os.features).
    const selected = index ? await selectImage(top, platform, read, source.description) : undefined;
    const raw = selected?.manifest ?? top;
    const manifest = parseImageManifest(raw, `manifest of ${source.description}`);
    const configBytes = await readBaseConfig(source, manifest.config, cache);
    const config = parseImageConfig(configBytes, `config of ${source.description}`);
    const actual: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    if (!index && requested && !platformMatches(actual, platform)) {
      throw new PlatformNotFoundError(
        `${source.description} has no image for ${formatPlatform(platform)}: it is a single-platform image for ${formatPlatform(actual)}`,
        { hint: `build --platform ${formatPlatform(actual)}, or use a base that has ${formatPlatform(platform)}` },
      );
    }
    bases.push({
      platform: selected ? { ...platform, ...selected.descriptor.platform } : actual,
      manifest,
      // A converted schema 1 base is named by the digest its registry knows.
      manifestDigest: (raw.convertedFrom ?? raw).digest,
      config,
      format: raw.mediaType === MediaType.dockerManifest ? "docker" : "oci",
    });
  }
  return { bases };
}

/** An index over one manifest per platform. */
function indexOf(
  manifests: readonly RawManifest[],
  images: readonly BuiltImage[],
  format: ManifestFormat,
  annotations?: Record<string, string>,
): RawManifest {
  const types = familyMediaTypes(format);
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: types.index,
    manifests: manifests.map((m, i) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.bytes.length,
      platform: (images[i] as BuiltImage).platform,
    })),
  };
  if (format === "oci" && annotations && Object.keys(annotations).length) index.annotations = { ...annotations };
  return rawManifest(encodeJson(index), types.index);
}

/**
 * Fetch each base layer at most once into the blob cache (verified), whatever the number of destinations.
 * `repair` drops a kept copy found damaged while it was read, so that the next open fetches it again.
 */
function cachedBlobOpener(
  cache: BlobCache,
  source: ImageSource,
): { open(descriptor: Descriptor): Promise<Readable>; repair(descriptor: Descriptor): Promise<void> } {
  const fetching = new Map<string, Promise<void>>();
  return {
    async open(descriptor) {
      let ready = fetching.get(descriptor.digest);
      if (!ready) {
        ready = (async () => {
          if (!(await cache.has(descriptor)))
            await cache.store(descriptor, await source.getBlob(descriptor), `base layer ${descriptor.digest}`);
        })();
        fetching.set(descriptor.digest, ready);
      }
      await ready;
      return cache.open(descriptor);
    },
    async repair(descriptor) {
      fetching.delete(descriptor.digest);
      await cache.remove(descriptor);
    },
  };
}

/**
 * What names a layer's bytes before they are known: its source and everything that shapes them. A push
 * killed while it streamed the layer is continued by the next run under this key (registry/upload.ts),
 * which checks that the bytes made again are the ones sent.
 */
function layerUploadKey(layer: LayerSource, options: LayerBuildOptions): string {
  const { compression, level, chown, preserveOwners, mtime } = options;
  const shape = JSON.stringify([resolve(layer.source), layer.dest, compression, level, chown, preserveOwners, mtime]);
  return createHash("sha256").update(shape).digest("hex");
}

/** A built layer, and the end of its upload when it was streamed to a registry while it was built. */
type StreamedLayer = BuiltLayer & { uploaded?: Promise<void> };

/**
 * Build a layer while uploading it to a registry. The upload needs the digest only at its end, so it starts
 * with the first compressed byte; `tee` resolves once the stream is consumed (buildLayer awaits it), and the
 * upload is finished with the digest once buildLayer has it. The layer is returned as soon as it is built,
 * with the upload's end (`uploaded`): while the registry syncs and commits the blob, the next layer is
 * built and the config is sent. A failed upload fails the push that waits for it (pushBlobs). The blob is
 * committed only once `base` settles well: a build whose base cannot be resolved leaves no blob behind.
 */
async function buildLayerStreaming(
  layer: LayerSource,
  options: LayerBuildOptions,
  destination: ImageDestination,
  planned: Promise<PlannedLayer | undefined>,
  head: Promise<LayerHead | undefined>,
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
  let sent: Readable | undefined; // the stream of the last upload started
  const tee = async (content: Readable): Promise<void> => {
    sent = content;
    // A stream the build abandoned (a head start it could not use) ends its upload: no failure. The
    // build may then tee again; the last upload is the one that counts.
    upload = (destination.putBlobStreaming as NonNullable<ImageDestination["putBlobStreaming"]>)
      .call(destination, options.mediaType, content, final, layerUploadKey(layer, options))
      .catch((error: unknown) => {
        if (!(content.errored instanceof AbandonedUpload)) throw error;
      });
    upload.catch(() => {});
    await Promise.race([finished(content), upload.then(() => finished(content))]);
  };
  // A layer to build will be uploaded: the session opens while its build is set up (unless a head start
  // has opened one already).
  planned.then(
    (plan) => plan && plan.kind !== "unchanged" && !upload && destination.openUpload?.(),
    () => {},
  );
  try {
    const built = await buildLayer(layer, { ...options, tee }, planned, head);
    base.then(
      () => resolveFinal(built.descriptor),
      (error: unknown) => rejectFinal(error),
    );
    // No upload, or only one the build abandoned (the layer turned out to be the recorded one): the push asks the registry.
    if (!upload || sent?.errored instanceof AbandonedUpload) return built;
    const uploaded = upload;
    uploaded.catch(() => {}); // observed by pushBlobs; the build may fail elsewhere first
    return { ...built, uploaded };
  } catch (error) {
    rejectFinal(error);
    await upload?.catch(() => {});
    throw error;
  }
}

/** Check that every layer source exists: a one-line error before any work. */
function checkLayerSources(layers: readonly LayerSource[]): void {
  for (const layer of layers) if (!isStreamSource(layer.source)) statLayerSource(layer.source);
  const streamed = layers.filter((layer) => isStandardInput(layer.source));
  if (new Set(streamed.map((layer) => `${layer.source}\0${layer.dest}`)).size > 1)
    throw new UsageError("standard input can be read only once", { hint: "give at most one layer from standard input (-)" });
}

/** Build an image (or an index of images) and write it to every destination; nothing partial is left on failure. */
export async function build(options: BuildOptions): Promise<BuildResult> {
  if (options.tags.length === 0)
    throw new UsageError("no destination given", { hint: "add -t REFERENCE (a registry, docker-archive:FILE, oci:DIR…)" });
  const targets = options.tags.map((tag) => parseTransportReference(tag));
  for (const target of targets) checkDestination(target);
  const platforms = options.platforms?.length ? options.platforms : [hostPlatform()];
  const platformLayers = options.platformLayers ?? [];
  for (const extra of platformLayers) {
    if (!platforms.some((p) => platformMatches(p, extra.platform) && platformMatches(extra.platform, p))) {
      throw new UsageError(`--layer-for ${formatPlatform(extra.platform)}: that platform is not being built`, {
        hint: "add it to --platform",
      });
    }
  }
  if (platforms.length > 1 && targets.some((t) => t.transport === "docker-archive")) {
    throw new UsageError("a docker-archive holds one image, not a multi-platform index", {
      hint: "write it to a registry, oci: or oci-archive:, or build one --platform",
    });
  }
  const allLayers = [...options.layers, ...platformLayers.map((p) => p.layer)];
  checkLayerSources(allLayers);
  const progress = options.progress ?? noProgress;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const cache = new BlobCache(cacheDir);
  // Layers are listed and fingerprinted on a worker thread while the base is resolved.
  const planner = options.planner ?? startLayerPlanning(options);
  let source: ImageSource | undefined;
  const destinations: ImageDestination[] = [];
  // The layers every platform shares are built, and streamed to a registry, while the base is resolved:
  // their bytes do not depend on it. Stopping them is how a base that cannot be resolved ends the build.
  const stop = new AbortController();
  let common: Promise<StreamedLayer[]> | undefined;
  const uploads: Promise<unknown>[] = [];
  try {
    const resolving = (async () => {
      if (options.from !== "scratch") source = await openSource(parseTransportReference(options.from), { ...options, cacheDir });
      return resolveBases(source, platforms, Boolean(options.platforms?.length), cache);
    })();
    resolving.catch(() => {}); // awaited below, after the builds have started
    for (const target of targets) destinations.push(await openDestination(target, { ...options, cacheDir }));

    const compression = options.compression ?? "gzip";
    const created = createdTimestamp(options.sourceDateEpoch);
    // The media type follows the manifest family, known once the base is: the built layers' descriptors
    // get the right one below (the blob is the same bytes either way).
    const layerOptions: LayerBuildOptions = {
      cacheDir,
      compression,
      mediaType: layerMediaType(options.format ?? "oci", compression),
      mtime: options.sourceDateEpoch ?? 0,
      progress,
      signal: options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal,
    };
    if (options.compressionLevel !== undefined) layerOptions.level = options.compressionLevel;
    if (options.chown) layerOptions.chown = options.chown;
    if (options.preserveOwners) layerOptions.preserveOwners = true;
    if (options.warn) layerOptions.warn = options.warn;
    // The first registry destination receives each new layer while it is compressed (upload overlaps the build).
    const streamingTarget = destinations.find((d) => d.putBlobStreaming);
    // A layer shared by several platforms is built once.
    const builtLayers = new Map<string, Promise<StreamedLayer>>();
    const planOf = (layer: LayerSource): Promise<PlannedLayer | undefined> =>
      planner?.plan(allLayers.indexOf(layer)) ?? Promise.resolve(undefined);
    const headOf = (layer: LayerSource): Promise<LayerHead | undefined> =>
      planner?.head(allLayers.indexOf(layer)) ?? Promise.resolve(undefined);
    const layerFor = (layer: LayerSource): Promise<StreamedLayer> => {
      const key = `${layer.source}\0${layer.dest}`;
      let built = builtLayers.get(key);
      if (!built) {
        built = streamingTarget
          ? buildLayerStreaming(layer, layerOptions, streamingTarget, planOf(layer), headOf(layer), resolving)
          : buildLayer(layer, layerOptions, planOf(layer));
        builtLayers.set(key, built);
        uploads.push(built.then((b) => b.uploaded).catch(() => {})); // failures are reported by whoever awaits the layer
      }
      return built;
    };
    // Layers are built one at a time (one pipeline in memory at once), in the order their plans (or
    // heads: a changed layer's first blocks, found before its plan) arrive: a small layer need not wait
    // for the listing of a big tree before it. With nothing ready, this thread plans a source the planner
    // thread has not started yet instead of waiting.
    const buildAll = async (wanted: readonly LayerSource[]): Promise<StreamedLayer[]> => {
      const result: StreamedLayer[] = [];
      const settled = (layer: LayerSource, i: number): Promise<number> =>
        Promise.race([planOf(layer), headOf(layer)]).then(
          () => i,
          () => i,
        );
      const ready = new Map(wanted.map((layer, i) => [i, settled(layer, i)]));
      const noneYet = Promise.resolve(-1);
      while (ready.size > 0) {
        let i = await Promise.race([...ready.values(), noneYet]);
        if (i < 0) {
          planner?.steal();
          i = await Promise.race(ready.values());
        }
        ready.delete(i);
        result[i] = await layerFor(wanted[i] as LayerSource);
      }
      return result;
    };
    common = buildAll(options.layers);
    common.catch(() => {}); // awaited below; a base that fails is reported first
    const { bases } = await resolving;
    const format = options.format ?? bases[0]?.format ?? "oci";
    if (options.annotations && Object.keys(options.annotations).length && format === "docker") {
      throw new UsageError("annotations need an OCI manifest", { hint: "add --format oci, or drop --annotation" });
    }
    const types = familyMediaTypes(format);
    const layerType = layerMediaType(format, compression);
    const baseBlobs = source ? cachedBlobOpener(cache, source) : undefined;

    const images: BuiltImage[] = [];
    for (const base of bases) {
      const extras = platformLayers.filter((extra) => platformMatches(base.platform, extra.platform)).map((extra) => extra.layer);
      const built = [...(await common), ...(await buildAll(extras))].map((b) => ({
        ...b,
        descriptor: { ...b.descriptor, mediaType: layerType },
      }));
      const config = mutateConfig(
        base.config,
        options.config ?? {},
        built.map((b) => ({ diffID: b.diffID, createdBy: b.createdBy })),
        created,
      );
      const configBytes = encodeJson(config);
      const configDescriptor: Descriptor = { mediaType: types.config, digest: digestOf(configBytes), size: configBytes.length };
      const baseLayers = (base.manifest?.layers ?? []).map((layer) => ({
        ...layer,
        mediaType: convertLayerMediaType(layer.mediaType, format),
      }));
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: types.manifest,
        config: configDescriptor,
        layers: [...baseLayers, ...built.map((b) => b.descriptor)],
      };
      if (format === "oci") {
        const annotations: Record<string, string> = {};
        if (source && base.manifestDigest)
          Object.assign(annotations, baseAnnotations(parseTransportReference(options.from), base.manifestDigest));
        Object.assign(annotations, options.annotations ?? {});
        if (Object.keys(annotations).length) manifest.annotations = annotations;
      }
      const blobs: BlobPlan[] = [
        ...(base.manifest?.layers ?? []).map((original, i) => ({
          descriptor: baseLayers[i] as Descriptor,
          kind: "base layer",
          open: () => (baseBlobs as NonNullable<typeof baseBlobs>).open(original),
          repair: () => (baseBlobs as NonNullable<typeof baseBlobs>).repair(original),
          location: source?.location,
        })),
        ...built.map((b) => ({
          descriptor: b.descriptor,
          kind: "layer",
          open: async () => b.open(),
          repair: () => b.repair(),
          alsoAt: knownLocations(cacheDir, b.descriptor.digest),
          streamed: b.uploaded && streamingTarget ? { destination: streamingTarget, done: b.uploaded } : undefined,
        })),
        // A layer built anew makes a config no registry has seen yet (unless a tree went back to an
        // earlier state, when sending it again does no harm): no round trip to ask.
        {
          descriptor: configDescriptor,
          kind: "config",
          open: async () => Readable.from([configBytes]),
          fresh: built.some((b) => !b.unchanged),
        },
      ];
      images.push({
        platform: base.platform,
        manifest: rawManifest(encodeJson(manifest), types.manifest),
        config: configBytes,
        blobs,
        built,
      });
    }

    const top =
      images.length === 1
        ? (images[0] as BuiltImage).manifest
        : indexOf(
            images.map((i) => i.manifest),
            images,
            format,
            options.annotations,
          );

    // Every destination gets its blobs and manifests before any is committed, so a failure leaves no archive.
    // An OCI layout gets OCI manifests even when the image follows a Docker base (as skopeo converts).
    const tops: RawManifest[] = [];
    const known = new KnownBlobs();
    for (const destination of destinations) {
      const stored = images.map((image) => forDestination(image.manifest, destination));
      for (const [i, image] of images.entries()) {
        await pushBlobs(destination, image.blobs, { ...options, known });
        if (images.length > 1) await destination.putManifest(stored[i] as RawManifest, { top: false });
      }
      let destinationTop = top;
      if (stored.some((m, i) => m !== images[i]?.manifest)) {
        destinationTop =
          images.length === 1
            ? (stored[0] as RawManifest)
            : indexOf(stored, images, destination.preferredManifestFormat ?? format, options.annotations);
      }
      await destination.putManifest(destinationTop, { top: true });
      tops.push(destinationTop);
    }
    const written: WriteResult[] = [];
    for (const [i, destination] of destinations.entries()) {
      const stored = tops[i] as RawManifest;
      await destination.commit();
      const here = destination.location;
      // Built layers are remembered where they were pushed, for a mount when they go to another repository.
      if (here) for (const image of images) for (const b of image.built) await rememberLocation(cacheDir, b.descriptor.digest, here);
      written.push({ destination: destination.description, digest: stored.digest, mediaType: stored.mediaType });
      progress({ phase: "done", kind: "manifest", id: stored.digest, bytes: stored.bytes.length, target: destination.description });
    }
    return { digest: top.digest, manifest: top.bytes, configs: images.map((i) => i.config), written };
  } catch (error) {
    // Layers still being built (the base failed) stop, and their uploads end (cancelled, with no blob
    // committed), before the destinations are given up.
    stop.abort(error);
    await common?.catch(() => {});
    await Promise.all(uploads);
    await Promise.all(destinations.map((d) => d.abort().catch(() => {})));
    throw error;
  } finally {
    await planner?.close();
    await source?.close().catch(() => {});
  }
}
