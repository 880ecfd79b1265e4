/**
 * Choosing the image for a platform in an index, the way containerd does: entries that are themselves
 * indexes (buildx and `imagetools create` nest them) are descended into, to a bounded depth; attestation
 * manifests (buildx's provenance and SBOMs, platform unknown/unknown) are never chosen; among the
 * matches, an exact variant wins, then the first listed.
 */
import { type Digest, shortDigest } from "../digest.js";
import { InvalidImageError, PlatformNotFoundError } from "../errors.js";
import { isIndexMediaType } from "../media-types.js";
import { type Descriptor, formatPlatform, type Platform, platformMatches } from "./descriptor.js";
import { type IndexManifest, parseImageIndex, type RawManifest } from "./manifest.js";

/** How deep indexes may nest below the top one. */
export const maxIndexDepth = 4;

/** The annotation buildx puts on an attestation manifest's index entry. */
const referenceType = "vnd.docker.reference.type";

/** Whether an index entry is an attestation manifest (not an image to run). */
export function isAttestation(entry: Descriptor): boolean {
  return entry.annotations?.[referenceType] === "attestation-manifest";
}

/** The image manifest chosen for a platform, with the index entry that names it (its platform is the image's). */
export interface SelectedImage {
  descriptor: Descriptor;
  manifest: RawManifest;
}

interface Found {
  matches: Descriptor[];
  available: string[];
}

async function collect(
  index: IndexManifest,
  wanted: Platform,
  read: (digest: Digest) => Promise<RawManifest>,
  what: string,
  depth: number,
  found: Found,
): Promise<void> {
  for (const entry of index.manifests) {
    if (isAttestation(entry)) continue;
    if (isIndexMediaType(entry.mediaType)) {
      if (entry.platform && !platformMatches(entry.platform, wanted)) continue;
      if (depth >= maxIndexDepth) {
        throw new InvalidImageError(`${what}: indexes nest more than ${maxIndexDepth} deep (at ${shortDigest(entry.digest)})`);
      }
      const nested = parseImageIndex(await read(entry.digest), `${what}: index ${shortDigest(entry.digest)}`);
      await collect(nested, wanted, read, what, depth + 1, found);
      continue;
    }
    if (platformMatches(entry.platform, wanted)) found.matches.push(entry);
    const platform = entry.platform ? formatPlatform(entry.platform) : undefined;
    if (platform && platform !== "unknown/unknown" && !found.available.includes(platform)) found.available.push(platform);
  }
}

/**
 * The image for `wanted` in the index `top`, reading nested indexes and the chosen manifest with `read`;
 * throws PlatformNotFoundError listing the platforms there are.
 */
export async function selectManifest(
  top: RawManifest,
  wanted: Platform,
  read: (digest: Digest) => Promise<RawManifest>,
  what: string,
): Promise<SelectedImage> {
  const found: Found = { matches: [], available: [] };
  await collect(parseImageIndex(top, `index of ${what}`), wanted, read, what, 0, found);
  const chosen = found.matches.find((d) => d.platform?.variant === wanted.variant) ?? found.matches[0];
  if (!chosen) {
    throw new PlatformNotFoundError(`${what} has no image for ${formatPlatform(wanted)}`, {
      hint: found.available.length ? `available: ${found.available.join(", ")}; choose one with \`platform\`` : "choose another image",
    });
  }
  return { descriptor: chosen, manifest: await read(chosen.digest) };
}
