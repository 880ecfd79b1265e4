/**
 * The image model: an `Image` (a manifest, a config, layers) and an `ImageIndex` (a manifest listing
 * images by platform), read lazily from any ImageSource. Nothing is read until a consumer asks, what is
 * read is kept, and bytes read from a source are handed on exactly as read (so digests are kept).
 */
import { Readable } from "node:stream";
import { readBounded } from "../bounded.js";
import { type Digest, digestOf, shortDigest } from "../digest.js";
import { InvalidImageError } from "../errors.js";
import { isIndexMediaType, type ManifestFormat, MediaType } from "../media-types.js";
import { emptyConfig, type ImageConfig, parseImageConfig } from "./config.js";
import { type Descriptor, hostPlatform, type Platform } from "./descriptor.js";
import { bytesBlob, type ImageBlob, type Layer, sourceBlob, sourceLayer } from "./layer.js";
import {
  encodeJson,
  type ImageManifest,
  type IndexManifest,
  maxManifestBytes,
  parseImageIndex,
  parseImageManifest,
  type RawManifest,
  rawManifest,
} from "./manifest.js";
import { maxIndexDepth, selectManifest } from "./select.js";
import type { ImageSource } from "./source.js";

/** One image: a manifest, its config and its layers. */
export interface Image {
  readonly kind: "image";
  /** What it is, for messages (the reference it was read from, or what made it). */
  readonly description: string;
  /** The manifest's bytes, media type and digest. */
  rawManifest(): Promise<RawManifest>;
  /** The manifest, parsed. */
  manifest(): Promise<ImageManifest>;
  /** The config's bytes. */
  rawConfig(): Promise<Buffer>;
  /** The config, parsed (a copy: changing it changes nothing). */
  config(): Promise<ImageConfig>;
  /** The config as a blob to write. */
  configBlob(): Promise<ImageBlob>;
  /** The layers, base first. */
  layers(): Promise<Layer[]>;
}

/** An entry of an index: its descriptor, and the image or index it names, read when asked. */
export interface IndexChild {
  readonly descriptor: Descriptor;
  read(): Promise<Image | ImageIndex>;
}

/** An image index (or Docker manifest list): images, and possibly nested indexes, by platform. */
export interface ImageIndex {
  readonly kind: "index";
  readonly description: string;
  rawManifest(): Promise<RawManifest>;
  manifest(): Promise<IndexManifest>;
  /** The entries, in the index's order. */
  children(): Promise<IndexChild[]>;
}

/** Run `compute` once, when first asked, and keep its result (a failure is kept too, and rethrown). */
export function lazy<T>(compute: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => {
    result ??= compute();
    return result;
  };
}

/** How an image is read from a source. */
export interface ReadOptions {
  /** What its layers are called in progress and messages (default `layer`; a build says `base layer`). */
  layerKind?: string;
}

/** An image of a source, its manifest already read (`child`: an entry of an index, named by digest in messages). */
export function sourceImage(source: ImageSource, raw: RawManifest, child = false, options: ReadOptions = {}): Image {
  const description = child ? `${source.description}@${shortDigest(raw.digest)}` : source.description;
  const manifest = lazy(async () => parseImageManifest(raw, `manifest of ${description}`));
  let configBytes: Buffer | undefined;
  const rawConfig = lazy(async () => {
    const { config } = await manifest();
    configBytes = await readBounded(await source.getBlob(config), maxManifestBytes, `config of ${description}`);
    return configBytes;
  });
  const config = lazy(async () => parseImageConfig(await rawConfig(), `config of ${description}`));
  const diffID = (index: number) => async (): Promise<Digest> => {
    const found = (await config()).rootfs.diff_ids[index];
    if (found === undefined) {
      throw new InvalidImageError(`${description}: layer ${index} has no diff_id in the config`, {
        hint: "the manifest and config do not belong together",
      });
    }
    return found as Digest;
  };
  return {
    kind: "image",
    description,
    rawManifest: async () => raw,
    manifest: async () => structuredClone(await manifest()),
    rawConfig,
    config: async () => structuredClone(await config()),
    configBlob: async () => {
      const blob = sourceBlob(source, (await manifest()).config, "config");
      // Read already (to edit it, or for its platform): sent from memory rather than fetched again.
      const held = configBytes;
      return held ? { ...blob, open: async () => Readable.from([held]) } : blob;
    },
    layers: async () => (await manifest()).layers.map((descriptor, i) => sourceLayer(source, descriptor, diffID(i), options.layerKind)),
  };
}

/** An index of a source, its manifest already read; each child is read when asked. */
export function sourceIndex(source: ImageSource, raw: RawManifest, options: ReadOptions = {}): ImageIndex {
  const manifest = lazy(async () => parseImageIndex(raw, `index of ${source.description}`));
  return {
    kind: "index",
    description: source.description,
    rawManifest: async () => raw,
    manifest: async () => structuredClone(await manifest()),
    children: async () =>
      (await manifest()).manifests.map((descriptor) => ({
        descriptor,
        read: lazy(async () => readChild(source, descriptor.digest, options)),
      })),
  };
}

/** Read the source's top manifest: an Image or an ImageIndex over the source. */
export async function readImage(source: ImageSource, options: ReadOptions = {}): Promise<Image | ImageIndex> {
  const raw = await source.getManifest();
  return isIndexMediaType(raw.mediaType) ? sourceIndex(source, raw, options) : sourceImage(source, raw, false, options);
}

/** Read the manifest with `digest` (an entry of an index) from the source. */
export async function readChild(source: ImageSource, digest: Digest, options: ReadOptions = {}): Promise<Image | ImageIndex> {
  const raw = await source.getManifest(digest);
  if (raw.digest !== digest) throw new InvalidImageError(`${source.description}: manifest ${shortDigest(digest)} has digest ${raw.digest}`);
  return isIndexMediaType(raw.mediaType) ? sourceIndex(source, raw, options) : sourceImage(source, raw, true, options);
}

/** The entry of an index (or of an index nested in it) whose manifest has `digest`. */
async function findChild(index: ImageIndex, digest: Digest, depth = 0): Promise<Image | ImageIndex | undefined> {
  const children = await index.children();
  const direct = children.find((c) => c.descriptor.digest === digest);
  if (direct) return direct.read();
  if (depth >= maxIndexDepth) return undefined;
  for (const child of children) {
    if (!isIndexMediaType(child.descriptor.mediaType)) continue;
    const nested = await child.read();
    const found = nested.kind === "index" ? await findChild(nested, digest, depth + 1) : undefined;
    if (found) return found;
  }
  return undefined;
}

/**
 * The image of `platform` in an index, chosen as containerd does (select.ts: nested indexes descended
 * into, attestations never chosen, an exact variant first); an image is its own.
 */
export async function selectImage(image: Image | ImageIndex, platform: Platform = hostPlatform()): Promise<Image> {
  return image.kind === "image" ? image : (await selectEntry(image, platform)).image;
}

/** The entry of an index chosen for `platform` (as selectImage chooses), and its image. */
export async function selectEntry(image: ImageIndex, platform: Platform): Promise<{ descriptor: Descriptor; image: Image }> {
  const read = async (digest: Digest): Promise<RawManifest> => {
    const found = await findChild(image, digest);
    if (!found) throw new InvalidImageError(`${image.description}: no manifest ${shortDigest(digest)} in the index`);
    return found.rawManifest();
  };
  const { descriptor } = await selectManifest(await image.rawManifest(), platform, read, image.description);
  const chosen = await findChild(image, descriptor.digest);
  if (chosen?.kind !== "image")
    throw new InvalidImageError(`${image.description}: manifest ${shortDigest(descriptor.digest)} is not an image`);
  return { descriptor, image: chosen };
}

/** The platform an image's config names. */
export async function platformOf(image: Image): Promise<Platform> {
  const config = await image.config();
  const platform: Platform = { os: config.os, architecture: config.architecture };
  if (config.variant) platform.variant = config.variant;
  return platform;
}

/** The manifest family of an image or index, from its media type. */
export async function formatOf(image: Image | ImageIndex): Promise<ManifestFormat> {
  const { mediaType } = await image.rawManifest();
  return mediaType === MediaType.dockerManifest || mediaType === MediaType.dockerManifestList ? "docker" : "oci";
}

/** An image with no layers and an empty config for `platform`: what `scratch` is. */
export function emptyImage(platform: Platform = hostPlatform()): Image {
  const configBytes = encodeJson(emptyConfig(platform));
  const config = { mediaType: MediaType.ociConfig, digest: digestOf(configBytes), size: configBytes.length };
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [] };
  const raw = rawManifest(encodeJson(manifest), MediaType.ociManifest);
  return {
    kind: "image",
    description: "scratch",
    rawManifest: async () => raw,
    manifest: async () => structuredClone(manifest),
    rawConfig: async () => configBytes,
    config: async () => parseImageConfig(configBytes),
    configBlob: async () => bytesBlob(configBytes, MediaType.ociConfig, "config"),
    layers: async () => [],
  };
}
