/**
 * Registry authentication driven by `WWW-Authenticate` challenges (RFC 7235): anonymous, Basic, and
 * Bearer tokens from the challenge's realm (distribution "Token Authentication Specification"), with
 * tokens cached per scope set for the life of the process.
 */

import type { Credential } from "./credentials.js";
import { RegistryError, registryError, unauthorized } from "./errors.js";
import { type HttpResponse, httpRequest, isLoopbackHost, readBody, readErrorBody } from "./http.js";

/** One challenge of a `WWW-Authenticate` header: a scheme (lowercased) and its parameters (names lowercased). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse `WWW-Authenticate` values into challenges. Handles several challenges in one value, quoted
 * strings with commas and escapes, and repeated headers (pass them as an array).
 */
export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (typeof header !== "string") return header.flatMap((h) => parseChallenges(h));
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (chars: RegExp) => {
    while (i < n && chars.test(header[i] as string)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && !/[\s,="]/.test(header[i] as string)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skip(/[\s,]/);
    const scheme = token();
    if (!scheme) {
      i++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/[\s,]/);
      const start = i;
      const name = token();
      skip(/[ \t]/);
      if (!name || header[i] !== "=") {
        i = start; // a new challenge's scheme (or the end)
        break;
      }
      i++;
      skip(/[ \t]/);
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      challenge.params[name.toLowerCase()] = value;
    }
  }
  return challenges;
}

/** The challenge we can answer: Bearer preferred, then Basic. */
export function chooseChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
}

/** The scope to pull (`pull`) or push (`pull,push`) a repository. */
export function repositoryScope(repository: string, actions: "pull" | "pull,push"): string {
  return `repository:${repository}:${actions}`;
}

interface CachedToken {
  value: Promise<string>;
  expiresAt: number;
}

/** The repository a set of scopes is mainly about: the first `repository:NAME:…` (the one pushed or pulled). */
export function scopeRepository(scopes: readonly string[]): string | undefined {
  const first = scopes.find((scope) => scope.startsWith("repository:"));
  if (!first) return undefined;
  return first.slice("repository:".length, first.lastIndexOf(":"));
}

/** What an Authenticator needs from its client. */
export interface AuthenticatorOptions {
  /** The registry host, for messages and credential lookup. */
  registry: string;
  /** The credential for this registry and repository (namespace entries may differ per repository). */
  credential: (repository?: string) => Promise<Credential | undefined>;
  userAgent?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Whether credentials may go to this host (`host[:port]`) over plain HTTP; default: loopback hosts only. */
  plainHttpAllowed?: ((host: string) => boolean) | undefined;
  /** The clock tokens expire by (tests); default Date.now. */
  now?: (() => number) | undefined;
}

/** A token service's answer. */
interface TokenAnswer {
  token: string;
  expiresIn: number;
}

// Token requests that an OAuth2 endpoint does not serve (a realm that only knows GET): fall back to GET.
const oauthUnsupported = new Set([400, 404, 405]);

/**
 * Answers a registry's challenge for a set of scopes; one per registry host per process. Bearer tokens are
 * cached per credential and scope set until their `expires_in` (less a margin).
 */
export class Authenticator {
  #challenge: Challenge | undefined;
  #tokens = new Map<string, CachedToken>();
  #credentials = new Map<string, Promise<Credential | undefined>>();

  constructor(private readonly options: AuthenticatorOptions) {}

  /** The challenge last seen (from the /v2/ ping or a 401); undefined means anonymous access. */
  get challenge(): Challenge | undefined {
    return this.#challenge;
  }

  /** Adopt the challenges of a 401 response; returns whether there is one we can answer. */
  setChallenge(header: string | readonly string[] | undefined): boolean {
    const chosen = chooseChallenge(parseChallenges(header));
    if (chosen) this.#challenge = chosen;
    return chosen !== undefined;
  }

  /** The credential for a repository (or the registry as a whole), looked up once. */
  credential(repository?: string): Promise<Credential | undefined> {
    const key = repository ?? "";
    let found = this.#credentials.get(key);
    if (!found) {
      found = this.options.credential(repository);
      this.#credentials.set(key, found);
      found.catch(() => this.#credentials.delete(key));
    }
    return found;
  }

  /** Forget the cached token for these scopes (after the registry refused it). */
  invalidate(scopes: readonly string[]): void {
    const suffix = `\0${scopeKey(scopes)}`;
    for (const key of this.#tokens.keys()) if (key.endsWith(suffix)) this.#tokens.delete(key);
  }

  /** The Authorization header for a request needing `scopes`, or undefined to go anonymous. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    const challenge = this.#challenge;
    const credential = await this.credential(scopeRepository(scopes));
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      if (credential?.username === undefined || credential.password === undefined) return undefined;
      return basicAuthorization(credential.username, credential.password);
    }
    if (credential?.registryToken) return `Bearer ${credential.registryToken}`;
    return `Bearer ${await this.token(challenge, scopes, credential)}`;
  }

  /** A token for the scopes from the challenge's realm, from the cache while it is valid. */
  async token(challenge: Challenge, scopes: readonly string[], credential: Credential | undefined): Promise<string> {
    const key = `${credentialKey(credential)}\0${scopeKey(scopes)}`;
    const cached = this.#tokens.get(key);
    const now = this.options.now ?? Date.now;
    if (cached && cached.expiresAt > now()) return cached.value;
    const entry: CachedToken = { value: Promise.resolve(""), expiresAt: Number.POSITIVE_INFINITY };
    entry.value = this.#fetchToken(challenge, scopes, credential).then((answer) => {
      // A token is used until shortly before it expires (a request may take a while to reach the registry).
      const lifetime = Math.max(answer.expiresIn, 10) * 1000;
      entry.expiresAt = now() + lifetime - Math.min(30_000, lifetime / 10);
      return answer.token;
    });
    this.#tokens.set(key, entry);
    try {
      return await entry.value;
    } catch (error) {
      if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
      throw error;
    }
  }

  // Token Authentication Specification: GET realm?service=…&scope=… (Basic credentials when we have them);
  // OAuth2 (POST grant_type=refresh_token) when the credential is an identity token, GET when the realm
  // does not serve OAuth2.
  async #fetchToken(challenge: Challenge, scopes: readonly string[], credential: Credential | undefined): Promise<TokenAnswer> {
    const realm = this.#realm(challenge, credential);
    if (credential?.identityToken) {
      const answer = await this.#oauthToken(realm, challenge, scopes, credential);
      if (answer) return answer;
    }
    const url = new URL(realm);
    const service = challenge.params.service;
    if (service) url.searchParams.set("service", service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const username = credential?.username ?? (credential?.identityToken ? "<token>" : undefined);
    const password = credential?.password || credential?.identityToken;
    if (username !== undefined && password !== undefined) url.searchParams.set("account", username);
    const authorization = username !== undefined && password !== undefined ? basicAuthorization(username, password) : undefined;
    const response = await this.#send({ method: "GET", url, authorization });
    return this.#readToken(response, credential);
  }

  // OAuth2 refresh-token grant; undefined when the realm does not serve OAuth2 (the caller then uses GET).
  async #oauthToken(realm: URL, challenge: Challenge, scopes: readonly string[], credential: Credential): Promise<TokenAnswer | undefined> {
    const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credential.identityToken ?? "", client_id: "ocify" });
    if (challenge.params.service) form.set("service", challenge.params.service);
    if (scopes.length) form.set("scope", scopes.join(" "));
    const response = await this.#send({
      method: "POST",
      url: realm,
      body: Buffer.from(form.toString()),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    if (oauthUnsupported.has(response.status)) {
      await readErrorBody(response);
      return undefined;
    }
    return this.#readToken(response, credential);
  }

  // The realm as a URL; a secret goes to it only over HTTPS, or plain HTTP to loopback and insecure-listed hosts.
  #realm(challenge: Challenge, credential: Credential | undefined): URL {
    const { registry } = this.options;
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError("AUTH_CHALLENGE", `${registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError("AUTH_CHALLENGE", `${registry} sent a Bearer challenge with an invalid realm`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new RegistryError("AUTH_CHALLENGE", `${registry} sent a Bearer challenge whose realm is not an HTTP URL`);
    }
    const hasSecret = Boolean(credential?.identityToken || (credential?.username !== undefined && credential.password !== undefined));
    const plainHttpAllowed = this.options.plainHttpAllowed ?? isLoopbackHost;
    if (hasSecret && url.protocol !== "https:" && !plainHttpAllowed(url.host)) {
      throw new RegistryError("INSECURE_REALM", `${registry} asks for credentials over plain HTTP at ${url.origin}`, {
        hint: `ocify sends passwords over HTTP only to loopback or --insecure-registry hosts; use --insecure-registry ${url.host} if you trust the network`,
      });
    }
    return url;
  }

  #send(request: {
    method: "GET" | "POST";
    url: URL;
    authorization?: string | undefined;
    body?: Buffer;
    headers?: Record<string, string>;
  }) {
    return httpRequest({
      ...request,
      registry: this.options.registry,
      followRedirects: true,
      userAgent: this.options.userAgent,
      signal: this.options.signal,
    });
  }

  async #readToken(response: HttpResponse, credential: Credential | undefined): Promise<TokenAnswer> {
    const { registry } = this.options;
    if (response.status === 401 || response.status === 403) {
      await readErrorBody(response);
      throw unauthorized({ registry, credentialSource: credential?.source, what: `${registry}` });
    }
    if (response.status !== 200) {
      await readErrorBody(response);
      throw registryError(
        response.status,
        undefined,
        { what: `getting a token for ${registry} from ${response.url.origin}`, registry, kind: "other" },
        response,
      );
    }
    const bytes = await readBody(response, 1 << 20, `token for ${registry}`);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = JSON.parse(bytes.toString("utf8")) as typeof json;
    } catch {
      throw new RegistryError("AUTH_TOKEN", `the token service of ${registry} answered something that is not JSON`);
    }
    const token = typeof json.token === "string" && json.token ? json.token : json.access_token;
    if (typeof token !== "string" || !token)
      throw new RegistryError("AUTH_TOKEN", `the token service of ${registry} answered without a token`);
    // distribution's token spec: a token without expires_in lasts 60 seconds.
    return { token, expiresIn: typeof json.expires_in === "number" && json.expires_in > 0 ? json.expires_in : 60 };
  }
}

/** The Authorization header of HTTP Basic authentication. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

// Tokens are kept per credential: two repositories of one registry may be reached with different accounts.
function credentialKey(credential: Credential | undefined): string {
  if (!credential) return "anonymous";
  return `${credential.source}\0${credential.username ?? ""}\0${credential.identityToken ? "id" : ""}`;
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(" ");
}
