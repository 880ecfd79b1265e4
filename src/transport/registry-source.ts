/**
 * Reading an image from a registry, the way pull limits and mirrors want it: mirrors are tried before the
 * registry (a miss falls back to it), a tag is resolved with HEAD (Docker Hub does not count it as a pull)
 * and a manifest the blob cache already holds by digest is read from there, not fetched; manifests fetched
 * are kept in the cache for the next time. Blobs come from wherever the manifest came from, and from the
 * registry itself when a mirror lacks one.
 */
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { BlobCache } from "../cache.js";
import { type Digest, verifyBytes } from "../digest.js";
import type { Descriptor } from "../image/descriptor.js";
import { maxManifestBytes, type RawManifest, rawManifest } from "../image/manifest.js";
import { formatReference, manifestReference, type Reference } from "../reference.js";
import { repositoryScope } from "../registry/auth.js";
import { type RegistryClient, registryClient } from "../registry/client.js";
import { ManifestUnknownError, RegistryError } from "../registry/errors.js";
import { type PullEndpoint, pullEndpoints } from "../registry/mirrors.js";
import type { ImageSource, RegistryLocation, TransportOptions } from "./types.js";

/** One place the image can be read from, with its client and scopes. */
interface Endpoint extends PullEndpoint {
  client: RegistryClient;
  scopes: string[];
  /** Whether this is the registry itself (the last endpoint). */
  origin: boolean;
}

function combine(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  if (!a) return b;
  if (!b) return a;
  return AbortSignal.any([a, b]);
}

/** A registry image as an ImageSource, through mirrors when configured. */
export class RegistrySource implements ImageSource {
  readonly description: string;
  /** The registry's own location (mounts into it work whichever mirror served the pull). */
  readonly location: RegistryLocation;
  readonly #endpoints: Endpoint[];
  /** The blob cache manifests are kept in, when the caller has one (a build does; a bare copy does not). */
  readonly #cache: BlobCache | undefined;
  #active: Endpoint | undefined;

  constructor(
    private readonly reference: Reference,
    private readonly options: TransportOptions,
  ) {
    this.description = formatReference(reference);
    this.location = { registry: reference.registry, repository: reference.repository };
    const endpoints = pullEndpoints(reference, options.registryMirrors ?? []);
    this.#endpoints = endpoints.map((endpoint, i) => ({
      ...endpoint,
      origin: i === endpoints.length - 1,
      scopes: [repositoryScope(endpoint.repository, "pull")],
      client: registryClient(endpoint.registry, {
        insecureRegistries: [...(options.insecureRegistries ?? []), ...(endpoint.insecure ? [endpoint.registry] : [])],
        userAgent: options.userAgent,
        credentials: options.credentials,
      }),
    }));
    this.#cache = options.cacheDir === undefined ? undefined : new BlobCache(options.cacheDir);
  }

  get #origin(): Endpoint {
    return this.#endpoints.at(-1) as Endpoint;
  }

  async getManifest(digest?: Digest): Promise<RawManifest> {
    if (digest === undefined) return (await this.#top()).manifest;
    const endpoint = this.#current();
    const what = `${this.reference.registry}/${this.reference.repository}@${digest}`;
    return this.#fallBack(endpoint, (e) => this.#byDigest(e, digest, what));
  }

  async getBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<Readable> {
    const endpoint = this.#current();
    return this.#fallBack(endpoint, (e) => e.client.getBlob(e.repository, descriptor, e.scopes, combine(signal, this.options.signal)));
  }

  async close(): Promise<void> {}

  // Where the top manifest came from; before it is asked for, the first endpoint (a mirror falls back).
  #current(): Endpoint {
    return this.#active ?? (this.#endpoints[0] as Endpoint);
  }

  // The top manifest from the first endpoint that has it; a mirror's failure (a miss, an outage) is not the user's.
  async #top(): Promise<{ manifest: RawManifest; endpoint: Endpoint }> {
    for (const endpoint of this.#endpoints) {
      try {
        const manifest = await this.#fetchTop(endpoint);
        this.#active = endpoint;
        return { manifest, endpoint };
      } catch (error) {
        if (endpoint.origin || this.options.signal?.aborted || !(error instanceof Error)) throw error;
      }
    }
    throw new RegistryError("NO_ENDPOINT", `${this.description}: nowhere to pull from`);
  }

  // A mirror that lacks something the manifest names: the registry itself is asked.
  async #fallBack<T>(endpoint: Endpoint, read: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    try {
      return await read(endpoint);
    } catch (error) {
      if (endpoint.origin || this.options.signal?.aborted || !(error instanceof RegistryError)) throw error;
      return read(this.#origin);
    }
  }

  async #fetchTop(endpoint: Endpoint): Promise<RawManifest> {
    const what = this.description;
    if (this.reference.digest !== undefined) return this.#byDigest(endpoint, this.reference.digest as Digest, what);
    const tag = manifestReference(this.reference);
    // Without a cache a HEAD saves nothing: one GET by tag, as before.
    if (!this.#cache) return endpoint.client.getManifest(endpoint.repository, tag, endpoint.scopes, what, this.options.signal);
    const head = await endpoint.client.headManifest(endpoint.repository, tag, endpoint.scopes, what, this.options.signal);
    if (!head) return endpoint.client.getManifest(endpoint.repository, tag, endpoint.scopes, what, this.options.signal);
    const cached = this.#cached(head.digest, head.mediaType);
    if (cached) return cached;
    try {
      return await this.#byDigest(endpoint, head.digest, what, head.mediaType);
    } catch (error) {
      // A registry whose HEAD names a digest its GET does not know: the tag, as before.
      if (!(error instanceof ManifestUnknownError)) throw error;
      return endpoint.client.getManifest(endpoint.repository, tag, endpoint.scopes, what, this.options.signal);
    }
  }

  async #byDigest(endpoint: Endpoint, digest: Digest, what: string, mediaType?: string): Promise<RawManifest> {
    const cached = this.#cached(digest, mediaType);
    if (cached) return cached;
    const manifest = await endpoint.client.getManifest(endpoint.repository, digest, endpoint.scopes, what, this.options.signal);
    await this.#keep(manifest);
    return manifest;
  }

  // A manifest is named by its digest: a cached one (checked again) is the same bytes.
  #cached(digest: string, mediaType: string | undefined): RawManifest | undefined {
    if (!this.#cache) return undefined;
    try {
      const bytes = readFileSync(this.#cache.path(digest));
      if (bytes.length > maxManifestBytes) return undefined;
      verifyBytes(bytes, { digest }, `cached manifest ${digest}`);
      return rawManifest(bytes, mediaType);
    } catch {
      return undefined;
    }
  }

  async #keep(manifest: RawManifest): Promise<void> {
    const descriptor = { digest: manifest.digest, size: manifest.bytes.length };
    // Only a shortcut for the next pull: a cache that cannot be written changes nothing.
    await this.#cache?.store(descriptor, Readable.from([manifest.bytes]), `manifest ${manifest.digest}`).catch(() => {});
  }
}
