/**
 * The `docker://` transport: an image in a registry, read and written through the distribution-spec client.
 * Sources ask for `pull` scope, destinations for `pull,push` (and `pull` on the repository a blob is mounted
 * from). Blobs already present are skipped, blobs on the same registry are mounted, others are uploaded in one
 * request or in chunks that survive cuts and kills (registry/upload.ts); manifests are PUT last, children by
 * digest, the top one under the tag.
 */
import { join } from "node:path";
import type { Readable } from "node:stream";
import { defaultCacheDir } from "../cache.js";
import { InputError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import type { RawManifest } from "../image/manifest.js";
import { isIndexMediaType, isNondistributableMediaType } from "../media-types.js";
import { formatReference, type Reference } from "../reference.js";
import { repositoryScope } from "../registry/auth.js";
import { type MountResult, type RegistryClient, registryClient, type UploadSession } from "../registry/client.js";
import { DeniedError, RegistryError, UnauthorizedError } from "../registry/errors.js";
import { isRetryableError } from "../registry/retry.js";
import {
  defaultChunkSize,
  type StreamedUploadError,
  type UploadContext,
  UploadStore,
  uploadBlob,
  uploadStream,
} from "../registry/upload.js";
import { RegistrySource } from "./registry-source.js";
import type { ImageDestination, ImageSource, PutBlobOptions, RegistryLocation, TransportOptions } from "./types.js";

function clientFor(reference: Reference, options: TransportOptions): RegistryClient {
  return registryClient(reference.registry, {
    insecureRegistries: options.insecureRegistries,
    userAgent: options.userAgent,
    credentials: options.credentials,
  });
}

/** Open an image in a registry for reading (through mirrors when configured); nothing is sent until a manifest or blob is asked for. */
export async function openRegistrySource(reference: Reference, options: TransportOptions): Promise<ImageSource> {
  return new RegistrySource(reference, options);
}

/** Open a repository (and tag) in a registry for writing. */
export async function openRegistryDestination(reference: Reference, options: TransportOptions): Promise<ImageDestination> {
  return new RegistryDestination(reference, clientFor(reference, options), options);
}

/**
 * A registry that refuses a manifest with non-distributable layers most likely refuses their URLs
 * (distribution does unless its configuration allows them, and answers 500): say so.
 */
function explainRefusedUrls(error: unknown, manifest: RawManifest): unknown {
  if (!(error instanceof RegistryError) || isIndexMediaType(manifest.mediaType)) return error;
  let layers: { mediaType?: unknown }[] = [];
  try {
    layers = (JSON.parse(manifest.bytes.toString("utf8")) as { layers?: { mediaType?: unknown }[] }).layers ?? [];
  } catch {}
  if (!layers.some((l) => typeof l?.mediaType === "string" && isNondistributableMediaType(l.mediaType))) return error;
  return new RegistryError(error.code, error.message, {
    hint: "the image has non-distributable layers, kept as URLs: the registry must allow them (distribution: validation.manifests.urls.allow)",
    status: error.status,
    cause: error,
  });
}

class RegistryDestination implements ImageDestination {
  readonly description: string;
  readonly location: RegistryLocation;
  readonly acceptsIndex = true;
  readonly #scopes: string[];
  // Upload sessions a refused mount opened (202), kept for the putBlob that follows; cancelled if unused.
  readonly #pendingUploads = new Map<string, URL>();
  // An upload session opened ahead (openUpload), for the next blob sent.
  #spare: Promise<UploadSession | undefined> | undefined;
  readonly #store: UploadStore;

  constructor(
    private readonly reference: Reference,
    private readonly client: RegistryClient,
    private readonly options: TransportOptions,
  ) {
    this.description = formatReference(reference);
    this.location = { registry: reference.registry, repository: reference.repository };
    this.#scopes = [repositoryScope(reference.repository, "pull,push")];
    this.#store = new UploadStore(join(options.cacheDir ?? defaultCacheDir(), "uploads"));
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.client.hasBlob(this.reference.repository, descriptor, this.#scopes, this.options.signal);
  }

  async mountBlob(descriptor: Descriptor, from: RegistryLocation): Promise<boolean> {
    if (from.registry !== this.reference.registry || from.repository === this.reference.repository) return false;
    const scopes = [...this.#scopes, repositoryScope(from.repository, "pull")];
    let result: MountResult;
    try {
      result = await this.client.mountBlob(this.reference.repository, descriptor.digest, from.repository, scopes, this.options.signal);
    } catch (error) {
      // The account may push here but not read the repository mounted from: the blob is uploaded instead.
      if (error instanceof UnauthorizedError || error instanceof DeniedError) return false;
      throw error;
    }
    if (result.mounted) return true;
    const previous = this.#pendingUploads.get(descriptor.digest);
    if (previous) await this.client.cancelUpload(previous, this.#scopes);
    this.#pendingUploads.set(descriptor.digest, result.upload);
    return false;
  }

  openUpload(): void {
    this.#spare ??= this.client.openUploadSession(this.reference.repository, this.#scopes, this.options.signal).catch(() => undefined);
  }

  /** What an upload of this destination needs, with the session openUpload or a refused mount opened, if any. */
  async #context(digest?: string): Promise<UploadContext> {
    const mounted = digest === undefined ? undefined : this.#pendingUploads.get(digest);
    if (digest !== undefined) this.#pendingUploads.delete(digest);
    let opened: UploadSession | undefined = mounted && { url: mounted, offset: 0, minChunk: 0 };
    if (!opened) {
      opened = await this.#spare;
      this.#spare = undefined;
    }
    return {
      client: this.client,
      repository: this.reference.repository,
      scopes: this.#scopes,
      what: this.description,
      signal: this.options.signal,
      chunkSize: this.options.uploadChunkSize ?? defaultChunkSize,
      store: this.#store,
      opened,
    };
  }

  /** One PUT, or chunks kept for resuming (upload.ts); `reopen` gives the bytes again after a failure. */
  async putBlob(descriptor: Descriptor, content: Readable, options: PutBlobOptions = {}): Promise<void> {
    // Hold the bytes until the request takes them: a caller may already listen for 'data' (progress), which
    // would otherwise let them flow away while the upload session is opened.
    content.pause();
    let first: Readable | undefined = content;
    const open = async (offset: number): Promise<Readable> => {
      if (offset === 0 && first) {
        const unread = first;
        first = undefined;
        return unread;
      }
      first?.destroy();
      first = undefined;
      if (!options.reopen) throw new RegistryError("UPLOAD_NOT_RESUMABLE", "the blob cannot be read again to resume its upload");
      return options.reopen(offset);
    };
    try {
      await uploadBlob(descriptor, open, await this.#context(descriptor.digest));
    } finally {
      first?.destroy();
    }
  }

  /**
   * Upload a blob while it is built (upload.ts uploadStream). A network failure leaves the session kept
   * for the push that follows (pushBlobs sends the blob from the cache, from where the registry stands);
   * any other failure cancels it.
   */
  async putBlobStreaming(_mediaType: string, content: Readable, final: Promise<Descriptor>, resumeKey?: string): Promise<void> {
    // `final` may reject (the build failed) while the upload is still running; whoever awaits it reports that.
    final.catch(() => {});
    content.pause();
    const context = await this.#context();
    const key = resumeKey === undefined ? undefined : `${this.reference.registry}/${this.reference.repository}#${resumeKey}`;
    try {
      await uploadStream(content, final, context, key);
    } catch (error) {
      const { failure, session, keys } = error as StreamedUploadError;
      // The build that feeds the stream fails with the upload's failure, not with a premature close.
      content.destroy(failure instanceof Error ? failure : undefined);
      if (!isRetryableError(failure) && !this.options.signal?.aborted) {
        if (session) await this.client.cancelUpload(session.url, this.#scopes);
        for (const saved of keys) await this.#store.remove(saved);
      }
      throw failure;
    }
  }

  async putManifest(manifest: RawManifest, options: { top: boolean }): Promise<void> {
    const { registry, repository, tag, digest } = this.reference;
    if (!options.top) {
      const what = `${registry}/${repository}@${manifest.digest}`;
      await this.client
        .putManifest(repository, manifest.digest, manifest, this.#scopes, what, this.options.signal)
        .catch((error: unknown) => {
          throw explainRefusedUrls(error, manifest);
        });
      return;
    }
    if (digest !== undefined && digest !== manifest.digest) {
      throw new InputError(`${this.description}: the image's digest is ${manifest.digest}, not the one the reference names`, {
        hint: "drop @DIGEST from the destination",
      });
    }
    // The top manifest goes under the tag; a digest-only reference is pushed by digest.
    await this.client
      .putManifest(repository, tag ?? manifest.digest, manifest, this.#scopes, this.description, this.options.signal)
      .catch((error: unknown) => {
        throw explainRefusedUrls(error, manifest);
      });
  }

  async commit(): Promise<void> {
    await this.#cancelPending();
  }

  /** Cancels open uploads; blobs and manifests already pushed stay (the registry's GC removes unreferenced blobs). */
  async abort(): Promise<void> {
    await this.#cancelPending();
  }

  async #cancelPending(): Promise<void> {
    const spare = await this.#spare;
    this.#spare = undefined;
    const uploads = [...this.#pendingUploads.values(), ...(spare ? [spare.url] : [])];
    this.#pendingUploads.clear();
    await Promise.all(uploads.map((upload) => this.client.cancelUpload(upload, this.#scopes)));
  }
}
