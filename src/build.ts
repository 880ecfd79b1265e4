/**
 * `ocify build`: a base image (any transport, or `scratch`), local artifacts added as layers, the config
 * edited, the result written to every destination. Base layers are never downloaded for a registry that
 * has them or can mount them; otherwise they are fetched once, verified, into the blob cache.
 */
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { readBounded } from "./bounded.js";
import { BlobCache, defaultCacheDir } from "./cache.js";
import { type BlobPlan, pushBlobs, type WriteResult } from "./copy.js";
import { digestOf } from "./digest.js";
import { InputError, UsageError } from "./errors.js";
import { type ImageConfig, parseImageConfig } from "./image/config.js";
import { type Descriptor, hostPlatform, type Platform, selectPlatform } from "./image/descriptor.js";
import { encodeJson, type ImageManifest, maxManifestBytes, parseImageIndex, parseImageManifest, rawManifest } from "./image/manifest.js";
import { type BuiltLayer, buildLayer, type LayerSource } from "./layer/build.js";
import {
  type Compression,
  convertLayerMediaType,
  familyMediaTypes,
  isIndexMediaType,
  layerMediaType,
  type ManifestFormat,
  MediaType,
} from "./media-types.js";
import { type ConfigEdits, createdTimestamp, emptyConfig, mutateConfig } from "./mutate.js";
import { noProgress } from "./progress.js";
import {
  type ImageDestination,
  type ImageSource,
  openDestination,
  openSource,
  parseTransportReference,
  type TransportOptions,
  type TransportReference,
} from "./transport/transport.js";

/** Everything `ocify build` needs. */
export interface BuildOptions extends TransportOptions {
  /** The base image as a transport reference, or `scratch`. */
  from: string;
  layers: readonly LayerSource[];
  config?: ConfigEdits;
  /** Manifest annotations (OCI manifests only). */
  annotations?: Record<string, string>;
  /** Manifest family; default: the base's (Docker stays Docker, OCI stays OCI), OCI for scratch. */
  format?: ManifestFormat;
  /** Platform to take from a multi-platform base, and of a scratch image; default the host's. */
  platform?: Platform;
  compression?: Compression;
  compressionLevel?: number;
  chown?: { uid: number; gid: number };
  /** Keep on-disk owners in new layers (`ocify import`). */
  preserveOwners?: boolean;
  /** Timestamp for `created`, history and every tar entry; default 0 (the epoch). */
  sourceDateEpoch?: number;
  /** Destinations as transport references (a bare reference means a registry). */
  tags: readonly string[];
}

/** What a build produced. */
export interface BuildResult {
  /** The manifest digest (the same for every destination). */
  digest: string;
  manifest: Buffer;
  config: Buffer;
  written: WriteResult[];
}

interface BaseImage {
  source?: ImageSource;
  manifest?: ImageManifest;
  manifestDigest?: string;
  config: ImageConfig;
  format: ManifestFormat;
}

async function openBase(from: string, platform: Platform, options: TransportOptions): Promise<BaseImage> {
  if (from === "scratch") return { config: emptyConfig(platform), format: "oci" };
  const source = await openSource(parseTransportReference(from), options);
  try {
    let top = await source.getManifest();
    if (isIndexMediaType(top.mediaType)) {
      const index = parseImageIndex(top, `index of ${source.description}`);
      top = await source.getManifest(selectPlatform(index.manifests, platform, source.description).digest);
    }
    const manifest = parseImageManifest(top, `manifest of ${source.description}`);
    const configBytes = await readBounded(await source.getBlob(manifest.config), maxManifestBytes, `config of ${source.description}`);
    const config = parseImageConfig(configBytes, `config of ${source.description}`);
    const format: ManifestFormat = top.mediaType === MediaType.dockerManifest ? "docker" : "oci";
    return { source, manifest, manifestDigest: top.digest, config, format };
  } catch (error) {
    await source.close().catch(() => {});
    throw error;
  }
}

/** Fetch each base layer at most once into the blob cache (verified), whatever the number of destinations. */
function cachedBlobOpener(cache: BlobCache, source: ImageSource): (descriptor: Descriptor) => Promise<Readable> {
  const fetching = new Map<string, Promise<void>>();
  return async (descriptor) => {
    let ready = fetching.get(descriptor.digest);
    if (!ready) {
      ready = (async () => {
        if (!(await cache.has(descriptor))) await cache.store(descriptor, await source.getBlob(descriptor), `base layer ${descriptor.digest}`);
      })();
      fetching.set(descriptor.digest, ready);
    }
    await ready;
    return cache.open(descriptor);
  };
}

async function checkLayerSources(layers: readonly LayerSource[]): Promise<void> {
  for (const layer of layers) {
    try {
      await stat(layer.source);
    } catch {
      throw new InputError(`layer source ${layer.source} does not exist`, { hint: "check the path given to --layer" });
    }
  }
}

/** Build an image and write it to every destination in `options.tags`; nothing partial is left on failure. */
export async function build(options: BuildOptions): Promise<BuildResult> {
  if (options.tags.length === 0) throw new UsageError("no destination given", { hint: "add -t REFERENCE (a registry, docker-archive:FILE, oci:DIR…)" });
  const targets: TransportReference[] = options.tags.map((tag) => parseTransportReference(tag));
  await checkLayerSources(options.layers);
  const progress = options.progress ?? noProgress;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const cache = new BlobCache(cacheDir);
  const platform = options.platform ?? hostPlatform();
  const base = await openBase(options.from, platform, options);
  const destinations: ImageDestination[] = [];
  try {
    const format = options.format ?? base.format;
    if (options.annotations && Object.keys(options.annotations).length && format === "docker") {
      throw new UsageError("annotations need an OCI manifest", { hint: "add --format oci, or drop --annotation" });
    }
    const types = familyMediaTypes(format);
    const compression = options.compression ?? "gzip";
    for (const target of targets) destinations.push(await openDestination(target, { ...options, cacheDir }));

    // New layers: built once into the cache, whatever the number of destinations.
    const built: BuiltLayer[] = [];
    for (const layer of options.layers) {
      const layerOptions: Parameters<typeof buildLayer>[1] = {
        cacheDir,
        compression,
        mediaType: layerMediaType(format, compression),
        mtime: options.sourceDateEpoch ?? 0,
        progress,
      };
      if (options.compressionLevel !== undefined) layerOptions.level = options.compressionLevel;
      if (options.chown) layerOptions.chown = options.chown;
      if (options.preserveOwners) layerOptions.preserveOwners = true;
      if (options.signal) layerOptions.signal = options.signal;
      built.push(await buildLayer(layer, layerOptions));
    }

    const created = createdTimestamp(options.sourceDateEpoch);
    const config = mutateConfig(
      base.config,
      options.config ?? {},
      built.map((b) => ({ diffID: b.diffID, createdBy: b.createdBy })),
      created,
    );
    const configBytes = encodeJson(config);
    const configDescriptor: Descriptor = { mediaType: types.config, digest: digestOf(configBytes), size: configBytes.length };
    const baseLayers = (base.manifest?.layers ?? []).map((layer) => ({ ...layer, mediaType: convertLayerMediaType(layer.mediaType, format) }));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: types.manifest,
      config: configDescriptor,
      layers: [...baseLayers, ...built.map((b) => b.descriptor)],
    };
    if (format === "oci") {
      const annotations: Record<string, string> = { ...(base.manifest?.annotations ?? {}) };
      if (base.source && base.manifestDigest) {
        annotations["org.opencontainers.image.base.name"] = options.from;
        annotations["org.opencontainers.image.base.digest"] = base.manifestDigest;
      }
      Object.assign(annotations, options.annotations ?? {});
      if (Object.keys(annotations).length) manifest.annotations = annotations;
    }
    const manifestRaw = rawManifest(encodeJson(manifest), types.manifest);

    const openBaseLayer = base.source ? cachedBlobOpener(cache, base.source) : undefined;
    const blobs: BlobPlan[] = [
      ...(base.manifest?.layers ?? []).map((original, i) => ({
        descriptor: baseLayers[i] as Descriptor,
        kind: "base layer",
        open: () => (openBaseLayer as (d: Descriptor) => Promise<Readable>)(original),
        location: base.source?.location,
      })),
      ...built.map((b) => ({ descriptor: b.descriptor, kind: "layer", open: async () => b.open() })),
      { descriptor: configDescriptor, kind: "config", open: async () => Readable.from([configBytes]) },
    ];
    // Every destination gets its blobs and manifest before any is committed, so a failure leaves no archive.
    for (const destination of destinations) {
      await pushBlobs(destination, blobs, options);
      await destination.putManifest(manifestRaw, { top: true });
    }
    const written: WriteResult[] = [];
    for (const destination of destinations) {
      await destination.commit();
      written.push({ destination: destination.description, digest: manifestRaw.digest, mediaType: manifestRaw.mediaType });
      progress({ phase: "done", kind: "manifest", id: manifestRaw.digest, bytes: manifestRaw.bytes.length, target: destination.description });
    }
    return { digest: manifestRaw.digest, manifest: manifestRaw.bytes, config: configBytes, written };
  } catch (error) {
    await Promise.all(destinations.map((d) => d.abort().catch(() => {})));
    throw error;
  } finally {
    await base.source?.close().catch(() => {});
  }
}
