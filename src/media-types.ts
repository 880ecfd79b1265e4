/** Media types of the OCI image spec and the Docker image manifest v2 schema 2. */

export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  /** The OCI artifact manifest, withdrawn before image-spec 1.1 was released; some registries still hold them. */
  ociArtifactManifest: "application/vnd.oci.artifact.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  dockerLayerForeign: "application/vnd.docker.image.rootfs.foreign.diff.tar",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  /** Docker image manifest v2 schema 1, unsigned. */
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  /** Docker image manifest v2 schema 1 with libtrust JWS signatures. */
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

/** The manifest family an image is written in. */
export type ManifestFormat = "oci" | "docker";

/** Layer compression. */
export type Compression = "gzip" | "zstd" | "none";

/** The Accept list for manifest GETs: every manifest and index type we read. */
export const manifestAccept: readonly string[] = [
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  // Last: a registry that still holds schema 1 images serves them as they are (ocify converts them).
  MediaType.dockerSchema1Signed,
  MediaType.dockerSchema1,
];

/** Whether the media type is a Docker schema 1 manifest, signed or not. */
export function isSchema1MediaType(mediaType: string): boolean {
  return mediaType === MediaType.dockerSchema1Signed || mediaType === MediaType.dockerSchema1;
}

/**
 * Whether a layer is non-distributable (Docker's "foreign" layers): registries and layouts keep only its
 * descriptor, whose `urls` say where the content lives.
 */
export function isNondistributableMediaType(mediaType: string): boolean {
  return (
    mediaType.startsWith("application/vnd.docker.image.rootfs.foreign.") ||
    mediaType.startsWith("application/vnd.oci.image.layer.nondistributable.")
  );
}

/** Whether the media type is an image index or Docker manifest list. */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** Whether the media type is a single-image manifest. */
export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

/** The layer media type for a manifest family and compression. */
export function layerMediaType(format: ManifestFormat, compression: Compression): string {
  if (format === "docker") {
    if (compression === "gzip") return MediaType.dockerLayerGzip;
    if (compression === "zstd") return MediaType.dockerLayerZstd;
    return MediaType.dockerLayer;
  }
  if (compression === "gzip") return MediaType.ociLayerGzip;
  if (compression === "zstd") return MediaType.ociLayerZstd;
  return MediaType.ociLayer;
}

/** The compression of a layer media type, or undefined when it is not a layer type we know. */
export function layerCompression(mediaType: string): Compression | undefined {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd") || mediaType.endsWith(".tar.zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType.endsWith(".v1.tar")) return "none";
  return undefined;
}

/** Convert a layer media type to the other manifest family, keeping its compression. */
export function convertLayerMediaType(mediaType: string, format: ManifestFormat): string {
  const compression = layerCompression(mediaType);
  if (compression === undefined) return mediaType;
  if (isNondistributableMediaType(mediaType)) {
    if (format === "oci") {
      if (compression === "gzip") return MediaType.ociLayerNondistributableGzip;
      return compression === "zstd" ? MediaType.ociLayerNondistributableZstd : MediaType.ociLayerNondistributable;
    }
    // Docker has no foreign zstd type: such a layer keeps its OCI type.
    if (compression === "zstd") return mediaType;
    return compression === "gzip" ? MediaType.dockerLayerForeignGzip : MediaType.dockerLayerForeign;
  }
  return layerMediaType(format, compression);
}

/** The manifest, config and index media types of a family. */
export function familyMediaTypes(format: ManifestFormat): { manifest: string; config: string; index: string } {
  return format === "docker"
    ? { manifest: MediaType.dockerManifest, config: MediaType.dockerConfig, index: MediaType.dockerManifestList }
    : { manifest: MediaType.ociManifest, config: MediaType.ociConfig, index: MediaType.ociIndex };
}
