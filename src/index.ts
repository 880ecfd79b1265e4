/**
 * ocify's library: build, copy, inspect and validate OCI / Docker images without a daemon. Images are
 * lazy objects (`Image`, `ImageIndex`, `Layer`) read from any transport (`readImage(await openSource(…))`),
 * changed by the pure functions of `mutate`, and written anywhere by `copyImage`; `build` and `inspect`
 * are made of them. Every error is an `OcifyError` with a one-line message and a hint. The `ocify`
 * command uses nothing but this module.
 */

export {
  type ArtifactFile,
  type AttachOptions,
  type AttachResult,
  addReferrer,
  attachArtifact,
  referrerEntry,
  referrersTag,
  titleAnnotation,
} from "./attach.js";
export { maxSplitLayers, splitLayerSource } from "./build/split.js";
export { type BuildOptions, type BuildResult, build, type PlatformLayer } from "./build.js";
export { buildDockerfile, type DockerfileBuildOptions } from "./build-dockerfile.js";
export { BlobCache, defaultCacheDir } from "./cache.js";
export {
  boundCacheAfterBuild,
  type CacheEntry,
  type CacheSummary,
  cacheInfo,
  defaultCacheMaxSize,
  formatSize,
  type PruneOptions,
  type PruneResult,
  parseDuration,
  parseSize,
  pruneCache,
} from "./cache-prune.js";
export { type CopyImageOptions, type CopyOptions, copyImage, KnownBlobs, type WriteResult } from "./copy.js";
export { type DecompressionLimits, decompressionLimits, defaultDecompressionLimits, setDecompressionLimits } from "./decompression.js";
export { createDigester, createVerifier, type Digest, Digester, digestOf, isDigest, parseDigest, shortDigest } from "./digest.js";
export {
  DigestMismatchError,
  fromSystemError,
  InputError,
  InterruptedError,
  InvalidImageError,
  InvalidReferenceError,
  OcifyError,
  type OcifyErrorOptions,
  PlatformNotFoundError,
  SizeMismatchError,
  UsageError,
} from "./errors.js";
export type { ForeignLayerOptions } from "./foreign-layers.js";
export { removeLiveTempsSync } from "./fs-atomic.js";
export { artifact, emptyDescriptor } from "./image/artifact.js";
export { type ExecutionConfig, emptyConfig, type History, type ImageConfig, parseImageConfig } from "./image/config.js";
export {
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type Platform,
  parsePlatform,
  platformMatches,
  selectPlatform,
} from "./image/descriptor.js";
export {
  emptyImage,
  formatOf,
  type Image,
  type ImageIndex,
  type IndexChild,
  platformOf,
  type ReadOptions,
  readChild,
  readImage,
  selectEntry,
  selectImage,
  sourceImage,
  sourceIndex,
} from "./image/image.js";
export { bytesBlob, type ImageBlob, type Layer, type PendingUpload, sourceBlob, sourceLayer, withDescriptor } from "./image/layer.js";
export {
  encodeJson,
  type ImageManifest,
  type IndexManifest,
  type Manifest,
  manifestDescriptor,
  maxManifestBytes,
  parseImageIndex,
  parseImageManifest,
  type RawManifest,
  rawManifest,
} from "./image/manifest.js";
export type { Addition, IndexEntry, IndexOptions } from "./image/mutate.js";
export * as mutate from "./image/mutate.js";
export { type SelectedImage, selectManifest } from "./image/select.js";
export type { ImageSource, RegistryLocation } from "./image/source.js";
export { describe as describeImage, type ImageInfo, type InspectOptions, type InspectResult, inspect, type LayerInfo } from "./inspect.js";
export { type BuiltLayer, buildLayer, type LayerBuildOptions, type LayerSource, parseLayerFlag } from "./layer/build.js";
export type { GzipEngine } from "./layer/compression.js";
export { type FileEntry, layerFromFiles, layerFromTar, type StreamLayerOptions } from "./layer/stream.js";
export { type Compression, type ManifestFormat, MediaType } from "./media-types.js";
export { applyConfigEdits, type ConfigEdits, createdTimestamp, parseCommand, parseKeyValue, parsePorts } from "./mutate.js";
export type { BlobPhase, ProgressEvent, ProgressSink } from "./progress.js";
export { formatReference, parseReference, type Reference } from "./reference.js";
export {
  type Credential,
  type CredentialProvider,
  defaultCredentials,
  ExplicitCredentialProvider,
  parseCredentialFlag,
} from "./registry/credentials.js";
export {
  BlobUnknownError,
  DeniedError,
  ManifestUnknownError,
  NameUnknownError,
  RegistryError,
  RegistryUnreachableError,
  TooManyRequestsError,
  UnauthorizedError,
} from "./registry/errors.js";
export { type LoginOptions, login, logout } from "./registry/login.js";
export {
  defaultRetryPolicy,
  defaultTimeouts,
  onRetry,
  type RetryEvent,
  type RetryPolicy,
  retryPolicy,
  setRetryPolicy,
  setTimeouts,
  type TimeoutPolicy,
  timeoutPolicy,
} from "./registry/retry.js";
export { deleteImage, listReferrers, listTags, type RegistryVerbOptions, resolveDigest, tagImage } from "./registry/verbs.js";
export { checkDestination, openDestination, openSource, parseTransportReference } from "./transport/transport.js";
export type { ImageDestination, TransportOptions, TransportReference } from "./transport/types.js";
export {
  type ImageSummary,
  type IndexSummary,
  type LayerSummary,
  type ValidateOptions,
  type ValidationSummary,
  validateImage,
} from "./validate.js";
