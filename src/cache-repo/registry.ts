/**
 * The registry layer cache (`--cache-repo REGISTRY/REPOSITORY`): look an entry up before compressing a
 * layer, store one after pushing it. A cache never fails a build: an entry that cannot be read, does not
 * match, or whose blob the repository does not hold (or holds with another size) is a miss, and the layer
 * is built as without a cache; a store that fails is reported as a warning and skipped.
 */
import { Readable } from "node:stream";
import { shortDigest } from "../digest.js";
import { OcifyError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import type { RegistryLocation } from "../image/source.js";
import { repositoryScope } from "../registry/auth.js";
import type { RegistryClient } from "../registry/client.js";
import { emptyConfig, emptyConfigBytes, type LayerCacheInputs, layerCacheManifest, layerCacheTag, readLayerCacheEntry } from "./entry.js";

/** Where a blob the cache names can be mounted from. */
export interface CacheHit {
  descriptor: Descriptor;
  /** The cache repository's registry and name (a mount source for the image's repository). */
  registry: string;
  repository: string;
}

/** The registry layer cache in one repository. */
export class RegistryLayerCache {
  readonly #client: RegistryClient;
  readonly #repository: string;
  readonly #warn: (message: string) => void;

  /** The cache in `repository` of `client`'s registry; `warn` hears why an entry was not used or not stored. */
  constructor(client: RegistryClient, repository: string, warn: (message: string) => void = () => {}) {
    this.#client = client;
    this.#repository = repository;
    this.#warn = warn;
  }

  /** `REGISTRY/REPOSITORY`, for messages. */
  get name(): string {
    return `${this.#client.registry}/${this.#repository}`;
  }

  /** The cache repository as a place a destination on the same registry can mount blobs from. */
  get location(): RegistryLocation {
    return { registry: this.#client.registry, repository: this.#repository };
  }

  /** A cached blob's bytes, read from the cache repository and verified while they stream. */
  openBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<Readable> {
    return this.#client.getBlob(this.#repository, descriptor, [repositoryScope(this.#repository, "pull")], signal);
  }

  /**
   * The blob cached for these inputs, verified to be in the cache repository with the recorded size; undefined
   * on a miss. Never throws but for an aborted `signal`.
   */
  async lookup(inputs: LayerCacheInputs, signal?: AbortSignal): Promise<CacheHit | undefined> {
    const scopes = [repositoryScope(this.#repository, "pull")];
    const tag = layerCacheTag(inputs);
    let raw: Awaited<ReturnType<RegistryClient["getManifest"]>>;
    try {
      raw = await this.#client.getManifest(this.#repository, tag, scopes, `layer cache ${this.name}:${tag.slice(0, 12)}`, signal);
    } catch (error) {
      signal?.throwIfAborted();
      if (!(error instanceof OcifyError) || error.code !== "MANIFEST_UNKNOWN")
        this.#warn(`layer cache ${this.name}: not read (${error instanceof Error ? error.message : String(error)})`);
      return undefined;
    }
    const entry = readLayerCacheEntry(raw, inputs);
    if (!entry.ok) {
      this.#warn(`layer cache ${this.name}: entry ${tag.slice(0, 12)} ignored: ${entry.reason}`);
      return undefined;
    }
    let present = false;
    try {
      present = await this.#client.hasBlob(this.#repository, entry.descriptor, scopes, signal);
    } catch (error) {
      signal?.throwIfAborted();
      this.#warn(`layer cache ${this.name}: blob not checked (${error instanceof Error ? error.message : String(error)})`);
    }
    if (!present) {
      this.#warn(
        `layer cache ${this.name}: entry ${tag.slice(0, 12)} ignored: blob ${shortDigest(entry.descriptor.digest)} is missing or of another size`,
      );
      return undefined;
    }
    return { descriptor: entry.descriptor, registry: this.#client.registry, repository: this.#repository };
  }

  /**
   * Record that these inputs make `blob`: the blob is put in the cache repository (mounted from `from`, a
   * repository of the same registry that holds it, or sent from `open()` when the mount is refused), then
   * the entry's config and manifest. Failures are warned about, not thrown (but for an aborted `signal`).
   */
  async store(
    inputs: LayerCacheInputs,
    blob: Pick<Descriptor, "digest" | "size">,
    source: { from?: string | undefined; open?: (() => Readable) | undefined },
    signal?: AbortSignal,
  ): Promise<boolean> {
    try {
      await this.#putBlob(blob, source, signal);
      await this.#putBlob(emptyConfig, { open: () => bufferStream(emptyConfigBytes) }, signal);
      const scopes = [repositoryScope(this.#repository, "pull,push")];
      const tag = layerCacheTag(inputs);
      await this.#client.putManifest(
        this.#repository,
        tag,
        layerCacheManifest(inputs, blob),
        scopes,
        `layer cache ${this.name}:${tag.slice(0, 12)}`,
        signal,
      );
      return true;
    } catch (error) {
      signal?.throwIfAborted();
      this.#warn(`layer cache ${this.name}: not stored (${error instanceof Error ? error.message : String(error)})`);
      return false;
    }
  }

  async #putBlob(
    blob: Pick<Descriptor, "digest" | "size">,
    source: { from?: string | undefined; open?: (() => Readable) | undefined },
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const scopes = [repositoryScope(this.#repository, "pull,push")];
    if (await this.#client.hasBlob(this.#repository, blob, scopes, signal)) return;
    let upload: URL | undefined;
    if (source.from !== undefined && source.from !== this.#repository) {
      const mount = await this.#client.mountBlob(
        this.#repository,
        blob.digest,
        source.from,
        [...scopes, repositoryScope(source.from, "pull")],
        signal,
      );
      if (mount.mounted) return;
      upload = mount.upload;
    }
    if (!source.open) {
      if (upload) await this.#client.cancelUpload(upload, scopes).catch(() => {});
      throw new OcifyError("CACHE_BLOB_UNAVAILABLE", `blob ${shortDigest(blob.digest)} could not be mounted into ${this.name}`);
    }
    upload ??= await this.#client.startUpload(this.#repository, scopes, signal);
    await this.#client.putBlob(upload, blob, source.open(), scopes, `storing blob ${shortDigest(blob.digest)} in ${this.name}`, signal);
  }
}

function bufferStream(bytes: Buffer): Readable {
  return Readable.from([bytes]);
}
