/**
 * The base of a build: for each platform, the image it starts from, read lazily through the model. A
 * registry base's config and any base layer a destination needs are read through the blob cache, so a
 * rebuild spends no round trip on the config and a layer is fetched once whatever the destinations.
 */
import { Readable } from "node:stream";
import { readBounded } from "../bounded.js";
import type { BlobCache } from "../cache.js";
import type { Digest } from "../digest.js";
import { PlatformNotFoundError } from "../errors.js";
import { type Descriptor, formatPlatform, type Platform, platformMatches } from "../image/descriptor.js";
import { emptyImage, formatOf, type Image, platformOf, readImage, selectEntry } from "../image/image.js";
import { maxManifestBytes } from "../image/manifest.js";
import type { ImageSource } from "../image/source.js";
import { layerCompression, type ManifestFormat } from "../media-types.js";
import { formatReference } from "../reference.js";
import type { TransportReference } from "../transport/types.js";

/** The image one platform of a build starts from. */
export interface Base {
  /** The platform the built image declares (an index entry's, with its variant and os.version, or the config's). */
  platform: Platform;
  image: Image;
  /** The base's manifest digest as its store knows it (a converted schema 1 manifest's own), when there is a base. */
  manifestDigest?: Digest;
  format: ManifestFormat;
}

/**
 * A source whose configs (registry sources only) and blobs are read through the blob cache: a config is
 * kept there and read from there on the next build (it is named by its digest, so a kept one is the same
 * bytes, checked again on reading; a damaged one is fetched again); a layer is fetched at most once,
 * verified, whatever the number of destinations that need its bytes, and kept for the next build.
 */
export function cachingSource(source: ImageSource, cache: BlobCache): ImageSource {
  const fetching = new Map<string, Promise<void>>();
  const keepConfigs = source.location !== undefined;
  const viaCache = async (descriptor: Descriptor): Promise<Readable> => {
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
  };
  const config = async (descriptor: Descriptor): Promise<Readable> => {
    const what = `config of ${source.description}`;
    const kept = descriptor.size <= maxManifestBytes ? cache.readSmall(descriptor, what) : undefined;
    if (kept) return Readable.from([kept]);
    const bytes = await readBounded(await source.getBlob(descriptor), maxManifestBytes, what);
    // Keeping it is only a shortcut for the next build: a cache that cannot be written changes nothing.
    await cache.store(descriptor, Readable.from([bytes]), what).catch(() => {});
    return Readable.from([bytes]);
  };
  // A base's blobs are its config and its layers: a small blob of no layer media type is the config.
  const isConfig = (descriptor: Descriptor): boolean =>
    descriptor.size <= maxManifestBytes && layerCompression(descriptor.mediaType) === undefined;
  return {
    description: source.description,
    ...(source.location ? { location: source.location } : {}),
    getManifest: (digest) => source.getManifest(digest),
    getBlob: (descriptor) => {
      if (!isConfig(descriptor)) return viaCache(descriptor);
      return keepConfigs ? config(descriptor) : source.getBlob(descriptor);
    },
    async forgetBlob(descriptor) {
      fetching.delete(descriptor.digest);
      await cache.remove(descriptor);
    },
    close: () => source.close(),
  };
}

/**
 * The base image of every platform. From an index, each platform's image (its entry's platform is the
 * built image's); a single-platform base is taken as it is unless platforms were asked for (`requested`):
 * then it must be one of them. Without a source (`scratch`), an empty image per platform.
 */
export async function resolveBases(source: ImageSource | undefined, platforms: readonly Platform[], requested: boolean): Promise<Base[]> {
  if (!source) return platforms.map((platform) => ({ platform, image: emptyImage(platform), format: "oci" }));
  const top = await readImage(source, { layerKind: "base layer" });
  const bases: Base[] = [];
  for (const platform of platforms) {
    let image: Image;
    let declared: Platform;
    if (top.kind === "index") {
      const entry = await selectEntry(top, platform);
      image = entry.image;
      declared = { ...platform, ...entry.descriptor.platform };
    } else {
      image = top;
      declared = await platformOf(top);
      if (requested && !platformMatches(declared, platform)) {
        throw new PlatformNotFoundError(
          `${source.description} has no image for ${formatPlatform(platform)}: it is a single-platform image for ${formatPlatform(declared)}`,
          { hint: `build \`platforms: ${formatPlatform(declared)}\`, or use a base that has ${formatPlatform(platform)}` },
        );
      }
    }
    const raw = await image.rawManifest();
    // A converted schema 1 base is named by the digest its registry knows.
    bases.push({ platform: declared, image, manifestDigest: (raw.convertedFrom ?? raw).digest, format: await formatOf(image) });
  }
  return bases;
}

/**
 * The manifest annotations naming the base image (image-spec annotations.md): its manifest's digest, and
 * its name when it has one that means the same on every machine: a registry reference, written out in full
 * (`alpine:3.20` and `docker.io/library/alpine:3.20` are one name), or the name a docker-archive gives it.
 * A layout's or an archive's path is left out: it is this machine's, and the digest would depend on it.
 */
export function baseAnnotations(from: TransportReference, manifestDigest: string): Record<string, string> {
  const name = from.transport === "docker" ? from.reference : from.transport === "docker-archive" ? from.name : undefined;
  return {
    ...(name ? { "org.opencontainers.image.base.name": formatReference(name) } : {}),
    "org.opencontainers.image.base.digest": manifestDigest,
  };
}
