/**
 * `inspect`: what an image reference names, as data: its top manifest, the platforms of an index, and
 * for one image its config and layers. Read through the image model, so only what is shown is fetched.
 */
import type { Digest } from "./digest.js";
import type { ExecutionConfig } from "./image/config.js";
import { formatPlatform, hostPlatform, type Platform } from "./image/descriptor.js";
import { type Image, type ImageIndex, platformOf, readImage, selectImage } from "./image/image.js";
import { isIndexMediaType } from "./media-types.js";
import { openSource, parseTransportReference } from "./transport/transport.js";
import type { TransportOptions } from "./transport/types.js";

/** What `inspect` reads. */
export interface InspectOptions extends TransportOptions {
  /** The image to describe in an index (default: the host's). */
  platform?: Platform | undefined;
  /** Describe an image at all (default true); false reads the top manifest alone. */
  describeImage?: boolean;
  /** For an index and no `platform`: describe the host's image too (default true). */
  imageOfIndex?: boolean;
}

/** One layer as a manifest lists it, with its diffID from the config. */
export interface LayerInfo {
  mediaType: string;
  digest: Digest;
  size: number;
  diffID: string | undefined;
}

/** One image described: its platform, config and layers. */
export interface ImageInfo {
  digest: Digest;
  mediaType: string;
  /** For an image ocify converted (from Docker schema 1): the manifest as the source holds it. */
  convertedFrom?: { mediaType: string; digest: Digest };
  /** `os/arch[/variant]` from the config. */
  platform: string;
  created: string | undefined;
  config: ExecutionConfig;
  configDigest: Digest;
  /** The config's bytes exactly as stored. */
  rawConfig: Buffer;
  layers: LayerInfo[];
  annotations: Record<string, string>;
}

/** What an image reference names. */
export interface InspectResult {
  /** The reference, as the source describes it. */
  name: string;
  /** The top manifest: an image manifest or an index. */
  mediaType: string;
  digest: Digest;
  /** The top manifest's bytes exactly as stored (a schema 1 manifest as it is, not as converted). */
  manifest: Buffer;
  /** For an index: each entry's platform (`unknown` when it names none), digest, and whether it is an index itself. */
  platforms?: { platform: string; digest: Digest; index: boolean }[];
  /** The image described (for an index, the one of `platform`), unless `describeImage` is false. */
  image?: ImageInfo;
}

/** Describe one image: platform, config and layers (the config is read, no layer is). */
export async function describe(image: Image): Promise<ImageInfo> {
  const [raw, manifest, config, rawConfig] = await Promise.all([image.rawManifest(), image.manifest(), image.config(), image.rawConfig()]);
  return {
    digest: raw.digest,
    mediaType: raw.mediaType,
    ...(raw.convertedFrom ? { convertedFrom: { mediaType: raw.convertedFrom.mediaType, digest: raw.convertedFrom.digest } } : {}),
    platform: formatPlatform(await platformOf(image)),
    created: config.created,
    config: config.config ?? {},
    configDigest: manifest.config.digest,
    rawConfig,
    layers: manifest.layers.map((l, i) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffID: config.rootfs.diff_ids[i] })),
    annotations: manifest.annotations ?? {},
  };
}

/** The platforms an index lists. */
async function platformsOf(index: ImageIndex): Promise<{ platform: string; digest: Digest; index: boolean }[]> {
  return (await index.manifest()).manifests.map((m) => ({
    platform: m.platform ? formatPlatform(m.platform) : "unknown",
    digest: m.digest,
    index: isIndexMediaType(m.mediaType),
  }));
}

/** Read what `reference` (any transport reference) names: its top manifest and, for one image, its config and layers. */
export async function inspect(reference: string, options: InspectOptions = {}): Promise<InspectResult> {
  const source = await openSource(parseTransportReference(reference), options);
  try {
    const top = await readImage(source);
    const raw = await top.rawManifest();
    const stored = raw.convertedFrom ?? raw;
    const result: InspectResult = { name: source.description, mediaType: raw.mediaType, digest: raw.digest, manifest: stored.bytes };
    if (top.kind === "index") result.platforms = await platformsOf(top);
    const wanted = top.kind === "image" || options.platform !== undefined || options.imageOfIndex !== false;
    if (options.describeImage !== false && wanted)
      result.image = await describe(await selectImage(top, options.platform ?? hostPlatform()));
    return result;
  } finally {
    await source.close();
  }
}
