/**
 * Artifacts as images of the model: a manifest with an `artifactType`, the empty config and the files as
 * its blobs (image-spec manifest.md, "Guidelines for Artifact Usage"). An SBOM or a signature attached to
 * an image is one of these with a `subject` (mutate.subject), written like any image by copyImage.
 */
import type { Digest } from "../digest.js";
import { InvalidImageError } from "../errors.js";
import { MediaType } from "../media-types.js";
import type { Descriptor } from "./descriptor.js";
import type { Image } from "./image.js";
import { bytesBlob, type ImageBlob, type Layer } from "./layer.js";
import { encodeJson, type ImageManifest, rawManifest } from "./manifest.js";

/** The empty descriptor an artifact names as its config (image-spec manifest.md, "Guidance for an Empty Descriptor"). */
export const emptyDescriptor: Readonly<Descriptor> = Object.freeze({
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" as Digest,
  size: 2,
  data: "e30=",
});

const emptyBytes = Buffer.from("{}");

/** A blob as an artifact's layer: its bytes are not a tar, so its diffID is its own digest. */
function artifactLayer(blob: ImageBlob): Layer {
  return { ...blob, diffID: async () => blob.descriptor.digest };
}

/** An artifact of `artifactType` holding `blobs` (in that order), with no subject and no annotations. */
export function artifact(artifactType: string, blobs: readonly ImageBlob[], description = `a ${artifactType} artifact`): Image {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config: { ...emptyDescriptor },
    layers: blobs.map((b) => b.descriptor),
  };
  const raw = rawManifest(encodeJson(manifest), MediaType.ociManifest);
  const config = { ...bytesBlob(emptyBytes, emptyDescriptor.mediaType, "config"), descriptor: { ...emptyDescriptor } };
  return {
    kind: "image",
    description,
    rawManifest: async () => raw,
    manifest: async () => structuredClone(manifest),
    rawConfig: async () => emptyBytes,
    config: async () => {
      throw new InvalidImageError(`${description} has no image config`, { hint: "an artifact's config is the empty descriptor" });
    },
    configBlob: async () => config,
    layers: async () => blobs.map(artifactLayer),
  };
}
