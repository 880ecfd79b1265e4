/** ocify's library API: build, copy and inspect OCI / Docker images without a daemon. */
export { type BuildOptions, type BuildResult, build } from "./build.js";
export { BlobCache, defaultCacheDir } from "./cache.js";
export { type BlobPlan, type CopyImageOptions, copyImage, KnownBlobs, pushBlobs, type WriteResult } from "./copy.js";
export { createDigester, createVerifier, type Digest, digestOf, isDigest, parseDigest } from "./digest.js";
export * from "./errors.js";
export { type ExecutionConfig, type History, type ImageConfig, parseImageConfig } from "./image/config.js";
export { type Descriptor, formatPlatform, hostPlatform, type Platform, parsePlatform, selectPlatform } from "./image/descriptor.js";
export {
  type ImageIndex,
  type ImageManifest,
  type Manifest,
  parseImageIndex,
  parseImageManifest,
  type RawManifest,
  rawManifest,
} from "./image/manifest.js";
export { type SelectedImage, selectImage } from "./image/select.js";
export { type BuiltLayer, buildLayer, type LayerBuildOptions, type LayerSource, parseLayerFlag } from "./layer/build.js";
export { setGarbageNudges } from "./layer/garbage.js";
export { type Compression, type ManifestFormat, MediaType } from "./media-types.js";
export { type AppendedLayer, applyConfigEdits, type ConfigEdits, mutateConfig } from "./mutate.js";
export type { ProgressEvent, ProgressSink } from "./progress.js";
export { formatReference, parseReference, type Reference } from "./reference.js";
export {
  type Credential,
  type CredentialProvider,
  defaultCredentials,
  ExplicitCredentialProvider,
} from "./registry/credentials.js";
export { type LoginOptions, login, logout } from "./registry/login.js";
export { deleteImage, listTags, type RegistryVerbOptions, resolveDigest, tagImage } from "./registry/verbs.js";
export {
  checkDestination,
  type ImageDestination,
  type ImageSource,
  openDestination,
  openSource,
  parseTransportReference,
  type TransportOptions,
  type TransportReference,
} from "./transport/transport.js";
