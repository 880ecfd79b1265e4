/**
 * A distribution-spec client for one registry host: the /v2/ ping (which picks HTTPS or, where allowed,
 * HTTP and learns the auth challenge), manifests, blobs, uploads and cross-repository mounts. Every
 * request carries the scopes it needs; the Authenticator answers with a cached token or credentials.
 */
import { pipeline as pipelineCallback, type Readable } from "node:stream";
import { createVerifier, type Digest, digestOf, isDigest, shortDigest } from "../digest.js";
import { DigestMismatchError, SizeMismatchError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import { maxManifestBytes, type RawManifest, rawManifest, verifyManifestDigest } from "../image/manifest.js";
import { manifestAccept } from "../media-types.js";
import { registryApiHost } from "../reference.js";
import { Authenticator, scopeRepository } from "./auth.js";
import { type CredentialProvider, defaultCredentials, resolveCredential } from "./credentials.js";
import { resumableBody } from "./download.js";
import { DeniedError, type ErrorContext, RegistryError, RegistryUnreachableError, registryError, unauthorized } from "./errors.js";
import {
  allowUnverifiedTls,
  type HttpRequest,
  type HttpResponse,
  httpRequest,
  isCertificateError,
  isClientCertificateError,
  isNotTlsError,
  readBody,
  readErrorBody,
  transportPolicy,
} from "./http.js";

/** Options of a registry client. */
export interface RegistryClientOptions {
  /** Registries (HOST[:PORT]) that may be reached over plain HTTP or with an unverified certificate. */
  insecureRegistries?: readonly string[] | undefined;
  userAgent?: string | undefined;
  /** Where credentials come from, in order; default: containers' auth.json files, then docker's config.json. */
  credentials?: readonly CredentialProvider[] | undefined;
}

/** A request to the registry, relative to its base URL or to an upload location. */
interface ClientRequest {
  method: HttpRequest["method"];
  /** `/v2/…` path, or an absolute URL (upload locations). */
  target: string | URL;
  scopes: readonly string[];
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal | undefined;
  followRedirects?: boolean;
  /** Statuses that mean success; others become errors. */
  ok: readonly number[];
  context: Omit<ErrorContext, "registry" | "credentialSource">;
  /** Retry transient failures (default true; a streamed body is never replayed here). */
  retry?: boolean;
}

/** The result of a mount attempt: mounted, or an upload session the registry opened instead (distribution-spec end-11). */
export type MountResult = { mounted: true } | { mounted: false; upload: URL };

const clients = new Map<string, RegistryClient>();
// Clients with their own credential chain, shared by whoever passes the same chain (a build's base and destinations).
const clientsByChain = new WeakMap<readonly CredentialProvider[], Map<string, RegistryClient>>();

/** The client for a registry host, shared within the process (so tokens and connections are reused). */
export function registryClient(registry: string, options: RegistryClientOptions = {}): RegistryClient {
  let shared = clients;
  if (options.credentials) {
    shared = clientsByChain.get(options.credentials) ?? new Map();
    clientsByChain.set(options.credentials, shared);
  }
  const key = JSON.stringify([registry, options.insecureRegistries ?? [], options.userAgent ?? ""]);
  let client = shared.get(key);
  if (!client) {
    client = new RegistryClient(registry, options);
    shared.set(key, client);
  }
  return client;
}

/** A client for one registry host. */
export class RegistryClient {
  /** The registry as users write it (`docker.io`, `127.0.0.1:5000`). */
  readonly registry: string;
  /** The host API requests go to (`registry-1.docker.io` for Docker Hub). */
  readonly apiHost: string;
  readonly auth: Authenticator;
  #base: Promise<URL> | undefined;
  readonly #options: RegistryClientOptions;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.apiHost = registryApiHost(registry);
    this.#options = options;
    const providers = options.credentials ?? [defaultCredentials()];
    this.auth = new Authenticator({
      registry,
      userAgent: options.userAgent,
      plainHttpAllowed: (host) => transportPolicy(host, options.insecureRegistries).schemes.includes("http"),
      credential: (repository) => resolveCredential(registry, providers, repository),
    });
  }

  /** The base URL (`https://host/`), found by pinging /v2/ once (distribution-spec end-1). */
  base(signal?: AbortSignal): Promise<URL> {
    if (!this.#base) {
      const pinging = this.#ping(signal);
      this.#base = pinging;
      pinging.catch(() => {
        if (this.#base === pinging) this.#base = undefined;
      });
    }
    return this.#base;
  }

  /** Ping /v2/: checks the registry speaks the distribution API and learns its auth challenge. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.base(signal);
  }

  // HTTPS first; where plain HTTP is allowed (loopback, --insecure-registry) it is tried when HTTPS fails to connect.
  async #ping(signal: AbortSignal | undefined): Promise<URL> {
    const policy = transportPolicy(this.apiHost, this.#options.insecureRegistries);
    if (!policy.verifyTls) allowUnverifiedTls(`https://${this.apiHost}`);
    const failures: unknown[] = [];
    for (const scheme of policy.schemes) {
      const base = new URL(`${scheme}://${this.apiHost}/`);
      let response: HttpResponse;
      try {
        response = await httpRequest({
          method: "GET",
          url: new URL("/v2/", base),
          registry: this.registry,
          userAgent: this.#options.userAgent,
          signal,
          // A fallback (plain HTTP after HTTPS failed) is a probe: a reset there is an answer, not a blip,
          // unless HTTPS found a server that speaks something else (plain HTTP): then faults are blips.
          retry: scheme === policy.schemes[0] || isNotTlsError(failures[0]),
        });
      } catch (error) {
        if (!(error instanceof RegistryUnreachableError)) throw error;
        // A server that speaks TLS with a certificate we cannot verify (or that wants ours), or a proxy that
        // failed, is answered with that, never by trying it without TLS.
        if (scheme === "https" && (isCertificateError(error) || isClientCertificateError(error) || error.proxy)) throw error;
        failures.push(error);
        continue;
      }
      const body = await readErrorBody(response);
      // A TLS server asked in plain HTTP answers 400: what HTTPS said is the better message.
      if (scheme === "http" && response.status === 400 && failures[0] !== undefined) throw failures[0];
      if (response.status === 200) return base;
      if (response.status === 401) {
        this.auth.setChallenge(response.headerValues("www-authenticate"));
        return base;
      }
      if (response.status === 404) {
        throw new RegistryError("NOT_A_REGISTRY", `${this.registry} does not serve the registry API at ${base.origin}/v2/`, {
          hint: "check the registry host name",
          status: 404,
        });
      }
      throw registryError(response.status, body, { what: this.registry, registry: this.registry, kind: "other" });
    }
    // Every scheme failed: the HTTPS failure says more, unless the server simply does not speak TLS.
    const [https, http] = failures;
    throw http !== undefined && isNotTlsError(https) && !isCertificateError(https) ? http : https;
  }

  /** Send a request with authorization, answering one 401 with a fresh challenge; non-`ok` statuses throw. */
  async request(request: ClientRequest): Promise<HttpResponse> {
    const base = await this.base(request.signal);
    const url = typeof request.target === "string" ? new URL(request.target, base) : request.target;
    const replayable = !(request.body !== undefined && !Buffer.isBuffer(request.body));
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.auth.authorization(request.scopes);
      const response = await httpRequest({
        method: request.method,
        url,
        headers: request.headers ?? {},
        body: request.body,
        authorization,
        authOrigin: base.origin,
        signal: request.signal,
        followRedirects: request.followRedirects ?? false,
        registry: this.registry,
        userAgent: this.#options.userAgent,
        ...(request.retry === false ? { retry: false } : {}),
      });
      if (request.ok.includes(response.status)) return response;
      const body = request.method === "HEAD" ? undefined : await readErrorBody(response);
      if (request.method === "HEAD") response.body.resume();
      if (response.status === 401 && attempt === 0 && replayable) {
        // A token for other scopes, an expired token, or a registry whose /v2/ was open: learn and retry once.
        const challenged = this.auth.setChallenge(response.headerValues("www-authenticate"));
        this.auth.invalidate(request.scopes);
        if (challenged) continue;
      }
      if (response.url.origin !== base.origin && response.url.origin !== url.origin) {
        // Storage a redirect pointed at (signed URL): its errors are not the registry's codes.
        throw new RegistryError(
          `HTTP_${response.status}`,
          `${request.context.what || this.registry}: the registry's storage at ${response.url.host} answered HTTP ${response.status}`,
          {
            hint: "a signed link may have expired (check this machine's clock); retry",
            status: response.status,
          },
        );
      }
      const credentialSource = authorization ? (await this.auth.credential(scopeRepository(request.scopes)))?.source : undefined;
      const push = request.scopes.some((scope) => /[:,](push|delete|\*)$/.test(scope));
      const context: ErrorContext = { ...request.context, registry: this.registry, credentialSource, push, method: request.method };
      if (response.status === 401) {
        // Valid credentials, but a token without the access asked for: the account may not do this.
        if (credentialSource && this.auth.challenge?.params.error === "insufficient_scope") {
          throw new DeniedError(context.what || `${this.registry}`, { status: 401, push });
        }
        throw unauthorized(context);
      }
      throw registryError(response.status, body, context, response);
    }
  }

  /** Fetch a manifest by tag or digest (distribution-spec end-3); verified when fetched by digest. */
  async getManifest(
    repository: string,
    reference: string,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<RawManifest> {
    const response = await this.request({
      method: "GET",
      target: `/v2/${repository}/manifests/${reference}`,
      scopes,
      headers: { accept: manifestAccept.join(", ") },
      signal,
      followRedirects: true,
      ok: [200],
      context: { what, kind: "manifest" },
    });
    const bytes = await readBody(response, maxManifestBytes, `${what}: manifest`);
    const raw = rawManifest(bytes, response.header("content-type"));
    // Over the bytes the digest covers: a signed schema 1 manifest's JWS payload (the signatures differ on every GET).
    if (isDigest(reference)) {
      verifyManifestDigest(raw, reference, `${what}: manifest`);
    } else {
      const claimed = response.header("docker-content-digest");
      if (claimed?.startsWith("sha256:")) verifyManifestDigest(raw, claimed, `${what}: manifest`);
    }
    return raw;
  }

  /**
   * A manifest's digest, media type and size by HEAD (distribution-spec end-3), which Docker Hub does not
   * count as a pull; undefined when the registry does not say the digest (the caller then GETs).
   */
  async headManifest(
    repository: string,
    reference: string,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; mediaType: string | undefined; size: number | undefined } | undefined> {
    const response = await this.request({
      method: "HEAD",
      target: `/v2/${repository}/manifests/${reference}`,
      scopes,
      headers: { accept: manifestAccept.join(", ") },
      signal,
      followRedirects: true,
      ok: [200],
      context: { what, kind: "manifest" },
    });
    response.body.resume();
    const digest = response.header("docker-content-digest");
    if (!digest || !isDigest(digest)) return undefined;
    const length = response.header("content-length");
    return { digest, mediaType: response.header("content-type"), size: length === undefined ? undefined : Number(length) };
  }

  /** Every tag of a repository (distribution-spec end-8a/8b), following `Link: <…>; rel="next"` pages. */
  async listTags(
    repository: string,
    scopes: readonly string[],
    what: string,
    options: { pageSize?: number; signal?: AbortSignal } = {},
  ): Promise<string[]> {
    const tags: string[] = [];
    const query = options.pageSize ? `?n=${options.pageSize}` : "";
    let target: string | URL = `/v2/${repository}/tags/list${query}`;
    for (let page = 0; page < 100_000; page++) {
      const response = await this.request({
        method: "GET",
        target,
        scopes,
        signal: options.signal,
        ok: [200],
        context: { what, kind: "other" },
      });
      const bytes = await readBody(response, 16 << 20, `${what}: tag list`);
      let json: { tags?: unknown };
      try {
        json = JSON.parse(bytes.toString("utf8")) as typeof json;
      } catch {
        throw new RegistryError("TAG_LIST_INVALID", `${what}: the registry's tag list is not JSON`);
      }
      if (Array.isArray(json.tags)) tags.push(...json.tags.filter((tag): tag is string => typeof tag === "string"));
      const next = nextLink(response.headerValues("link"));
      if (!next) return tags;
      target = new URL(next, response.url);
      if (target.origin !== response.url.origin)
        throw new RegistryError("TAG_LIST_INVALID", `${what}: the next page of tags is on another host`);
    }
    return tags;
  }

  /** Delete a manifest by digest (distribution-spec end-9); registries may refuse (405 UNSUPPORTED). */
  async deleteManifest(repository: string, digest: Digest, scopes: readonly string[], what: string, signal?: AbortSignal): Promise<void> {
    const response = await this.request({
      method: "DELETE",
      target: `/v2/${repository}/manifests/${digest}`,
      scopes,
      signal,
      ok: [202, 200, 204],
      context: { what, kind: "manifest" },
    });
    response.body.resume();
  }

  /** Store a manifest under a tag or its digest (distribution-spec end-7). */
  async putManifest(
    repository: string,
    reference: string,
    manifest: RawManifest,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const response = await this.request({
      method: "PUT",
      target: `/v2/${repository}/manifests/${reference}`,
      scopes,
      headers: { "content-type": manifest.mediaType },
      body: manifest.bytes,
      signal,
      ok: [201, 200],
      context: { what, kind: "manifest" },
    });
    response.body.resume();
    const stored = response.header("docker-content-digest");
    if (stored?.startsWith("sha256:") && stored !== digestOf(manifest.bytes)) {
      throw new DigestMismatchError(`${what}: stored manifest`, digestOf(manifest.bytes), stored);
    }
  }

  /** Whether the repository has the blob (distribution-spec end-2, HEAD). */
  async hasBlob(
    repository: string,
    descriptor: Pick<Descriptor, "digest" | "size">,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<boolean> {
    const response = await this.request({
      method: "HEAD",
      target: `/v2/${repository}/blobs/${descriptor.digest}`,
      scopes,
      signal,
      followRedirects: true,
      ok: [200, 404],
      context: { what: `checking blob ${shortDigest(descriptor.digest)} in ${this.registry}/${repository}`, kind: "other" },
    });
    response.body.resume();
    if (response.status === 404) return false;
    const length = response.header("content-length");
    return length === undefined || Number(length) === descriptor.size;
  }

  /**
   * A blob's bytes (distribution-spec end-2), following redirects to blob storage (without credentials when
   * it is another origin), verified against the descriptor's digest and size while they stream.
   */
  async getBlob(
    repository: string,
    descriptor: Pick<Descriptor, "digest" | "size">,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<Readable> {
    const what = `blob ${shortDigest(descriptor.digest)} in ${this.registry}/${repository}`;
    const get = (offset: number) =>
      this.request({
        method: "GET",
        target: `/v2/${repository}/blobs/${descriptor.digest}`,
        scopes,
        signal,
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        followRedirects: true,
        ok: offset > 0 ? [200, 206] : [200],
        context: { what, kind: "blob" },
      });
    // A body that breaks off is continued with a Range request; the digest is checked over the whole.
    const body = resumableBody(await get(0), get, descriptor.size, what, signal);
    const verifier = createVerifier(descriptor, what);
    return pipelineCallback(body, verifier, () => {});
  }

  /** Open an upload session (distribution-spec end-4a); returns its location. */
  async startUpload(repository: string, scopes: readonly string[], signal?: AbortSignal): Promise<URL> {
    return (await this.openUploadSession(repository, scopes, signal)).url;
  }

  /**
   * Mount a blob from another repository of this registry (distribution-spec end-11). A 202 means the
   * registry did not mount it and opened an upload instead, which the caller uses or cancels.
   */
  async mountBlob(repository: string, digest: Digest, from: string, scopes: readonly string[], signal?: AbortSignal): Promise<MountResult> {
    const what = `mounting blob ${shortDigest(digest)} from ${from} into ${this.registry}/${repository}`;
    const query = new URLSearchParams({ mount: digest, from });
    const response = await this.request({
      method: "POST",
      target: `/v2/${repository}/blobs/uploads/?${query}`,
      scopes,
      headers: { "content-length": "0" },
      body: Buffer.alloc(0),
      signal,
      ok: [201, 202],
      context: { what, kind: "upload" },
    });
    response.body.resume();
    if (response.status === 201) return { mounted: true };
    return { mounted: false, upload: this.#location(response, what) };
  }

  /** Send a whole blob in one PUT to an upload location (distribution-spec end-6, monolithic), streamed. */
  async putBlob(
    upload: URL,
    descriptor: Pick<Descriptor, "digest" | "size">,
    content: Readable,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const url = new URL(upload);
    url.searchParams.set("digest", descriptor.digest);
    const response = await this.request({
      method: "PUT",
      target: url,
      scopes,
      headers: { "content-type": "application/octet-stream", "content-length": String(descriptor.size) },
      body: content,
      signal,
      ok: [201],
      context: { what, kind: "upload" },
    });
    response.body.resume();
  }

  /**
   * Stream a blob of unknown digest: one PATCH of the whole body (distribution-spec end-5, streamed), then
   * PUT ?digest= (end-6) once `final` gives the digest. The registry verifies the digest; we check the size.
   */
  async putBlobStreaming(
    upload: URL,
    content: Readable,
    final: Promise<Pick<Descriptor, "digest" | "size">>,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<Pick<Descriptor, "digest" | "size">> {
    const patched = await this.request({
      method: "PATCH",
      target: upload,
      scopes,
      headers: { "content-type": "application/octet-stream" },
      body: content,
      signal,
      ok: [202, 204],
      context: { what, kind: "upload" },
    });
    patched.body.resume();
    const descriptor = await final;
    const range = patched.header("range");
    const received = range ? Number(range.slice(range.indexOf("-") + 1)) + 1 : undefined;
    if (received !== undefined && received !== descriptor.size) {
      throw new SizeMismatchError(what || `streamed blob ${shortDigest(descriptor.digest)}`, descriptor.size, received);
    }
    const next = patched.header("location") ? this.#location(patched, what) : upload;
    next.searchParams.set("digest", descriptor.digest);
    const response = await this.request({
      method: "PUT",
      target: next,
      scopes,
      headers: { "content-length": "0" },
      body: Buffer.alloc(0),
      signal,
      ok: [201],
      context: { what, kind: "upload" },
    });
    response.body.resume();
    return descriptor;
  }

  /**
   * Open an upload session (distribution-spec end-4a) and learn the smallest chunk the registry takes
   * (`OCI-Chunk-Min-Length`, 0 when it does not say).
   */
  async openUploadSession(repository: string, scopes: readonly string[], signal?: AbortSignal): Promise<UploadSession> {
    const what = `starting an upload to ${this.registry}/${repository}`;
    const response = await this.request({
      method: "POST",
      target: `/v2/${repository}/blobs/uploads/`,
      scopes,
      headers: { "content-length": "0" },
      body: Buffer.alloc(0),
      signal,
      ok: [202],
      context: { what, kind: "upload" },
    });
    response.body.resume();
    const minChunk = Number(response.header("oci-chunk-min-length") ?? 0);
    return { url: this.#location(response, what), offset: 0, minChunk: Number.isSafeInteger(minChunk) && minChunk > 0 ? minChunk : 0 };
  }

  /**
   * Send the next part of an upload (distribution-spec end-5): with `length`, a chunk with Content-Range
   * and Content-Length; without, a streamed part of unknown length (`sent` says afterwards how long it
   * was). Returns the session as the registry confirms it: its next location, and the offset after the
   * bytes it holds (its `Range`; what was sent when it does not say).
   */
  async patchUpload(
    session: UploadSession,
    body: Readable,
    length: number | undefined,
    sent: () => number,
    scopes: readonly string[],
    what: string,
    signal?: AbortSignal,
  ): Promise<UploadSession> {
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (length !== undefined) {
      headers["content-length"] = String(length);
      headers["content-range"] = `${session.offset}-${session.offset + length - 1}`;
    }
    const response = await this.request({
      method: "PATCH",
      target: session.url,
      scopes,
      headers,
      body,
      signal,
      ok: [202, 204],
      context: { what, kind: "upload" },
    });
    response.body.resume();
    const next = response.header("location") ? this.#location(response, what) : session.url;
    const expected = session.offset + sent();
    return { url: next, offset: rangeEnd(response.header("range"), expected) ?? expected, minChunk: session.minChunk };
  }

  /**
   * Where an upload stands (distribution-spec end-13 GET): its location and the offset after the bytes
   * the registry holds; undefined when the registry no longer knows the session (404).
   */
  async uploadStatus(session: UploadSession, scopes: readonly string[], signal?: AbortSignal): Promise<UploadSession | undefined> {
    const response = await this.request({
      method: "GET",
      target: session.url,
      scopes,
      signal,
      ok: [204, 200, 404],
      context: { what: "asking where an upload stands", kind: "upload" },
    });
    response.body.resume();
    if (response.status === 404) return undefined;
    const url = response.header("location") ? this.#location(response, "asking where an upload stands") : session.url;
    return { url, offset: rangeEnd(response.header("range")) ?? 0, minChunk: session.minChunk };
  }

  /** Close an upload with its digest (distribution-spec end-6, PUT ?digest= with no body); not retried here. */
  async finishUpload(session: UploadSession, digest: Digest, scopes: readonly string[], what: string, signal?: AbortSignal): Promise<void> {
    const url = new URL(session.url);
    url.searchParams.set("digest", digest);
    const response = await this.request({
      method: "PUT",
      target: url,
      scopes,
      headers: { "content-length": "0" },
      body: Buffer.alloc(0),
      signal,
      retry: false,
      ok: [201],
      context: { what, kind: "upload" },
    });
    response.body.resume();
  }

  /** Cancel an upload session (distribution-spec end-13); failures are ignored. */
  async cancelUpload(upload: URL, scopes: readonly string[]): Promise<void> {
    try {
      const response = await this.request({
        method: "DELETE",
        target: upload,
        scopes,
        ok: [204, 200, 202, 404],
        context: { what: "cancelling an upload", kind: "upload" },
      });
      response.body.resume();
    } catch {}
  }

  #location(response: HttpResponse, what: string): URL {
    const location = response.header("location");
    if (!location)
      throw new RegistryError("BLOB_UPLOAD_INVALID", `${what}: the registry answered without an upload location`, {
        status: response.status,
      });
    return new URL(location, response.url);
  }
}

/** An upload session: where to send the next part, and how many bytes the registry holds. */
export interface UploadSession {
  url: URL;
  offset: number;
  /** The smallest chunk the registry takes but for the last (`OCI-Chunk-Min-Length`); 0 when unsaid. */
  minChunk: number;
}

/**
 * The offset after a `Range: 0-END` header (END + 1); undefined when absent or unreadable. Distribution
 * says `0-0` for an empty upload as for a one-byte one: `expected` (what the caller sent) decides.
 */
export function rangeEnd(value: string | undefined, expected?: number): number | undefined {
  const match = value === undefined ? null : /^(?:bytes=)?0-(\d+)$/.exec(value.trim());
  if (!match) return undefined;
  const end = Number(match[1]);
  return end === 0 ? (expected === 1 ? 1 : 0) : end + 1;
}

/** The `rel="next"` target of RFC 8288 Link headers, if any. */
export function nextLink(values: readonly string[]): string | undefined {
  for (const value of values) {
    for (const match of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]+)*)/g)) {
      if (/;\s*rel="?([^";,]*\s)?next(\s[^";,]*)?"?/i.test(match[2] ?? "")) return match[1];
    }
  }
  return undefined;
}
