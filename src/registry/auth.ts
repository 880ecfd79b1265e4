/**
 * Registry authentication driven by `WWW-Authenticate` challenges (RFC 7235): anonymous, Basic, and
 * Bearer tokens from the challenge's realm (distribution "Token Authentication Specification"), with
 * tokens cached per scope set for the life of the process.
 */

import type { Credential } from "./credentials.js";
import { RegistryError, unauthorized } from "./errors.js";
import { httpRequest, readBody, readErrorBody } from "./http.js";

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

/** What an Authenticator needs from its client. */
export interface AuthenticatorOptions {
  /** The registry host, for messages and credential lookup. */
  registry: string;
  /** The credential for this registry, looked up once, lazily. */
  credential: () => Promise<Credential | undefined>;
  userAgent?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Whether credentials may go to this host (`host[:port]`) over plain HTTP; default: never. */
  plainHttpAllowed?: ((host: string) => boolean) | undefined;
}

/** Answers a registry's challenge for a set of scopes; one per registry host per process. */
export class Authenticator {
  #challenge: Challenge | undefined;
  #tokens = new Map<string, CachedToken>();
  #credential: Promise<Credential | undefined> | undefined;

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

  /** The credential in use, if any (looked up once). */
  credential(): Promise<Credential | undefined> {
    this.#credential ??= this.options.credential();
    return this.#credential;
  }

  /** Forget the cached token for these scopes (after the registry refused it). */
  invalidate(scopes: readonly string[]): void {
    this.#tokens.delete(scopeKey(scopes));
  }

  /** The Authorization header for a request needing `scopes`, or undefined to go anonymous. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    const challenge = this.#challenge;
    const credential = await this.credential();
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      if (credential?.username === undefined || credential.password === undefined) return undefined;
      return `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
    }
    if (credential?.registryToken) return `Bearer ${credential.registryToken}`;
    const key = scopeKey(scopes);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${await cached.value}`;
    const entry: CachedToken = { value: Promise.resolve(""), expiresAt: Number.POSITIVE_INFINITY };
    entry.value = this.#fetchToken(challenge, scopes, credential).then((token) => {
      entry.expiresAt = Date.now() + Math.max(60, token.expiresIn) * 1000 - 10_000;
      return token.token;
    });
    this.#tokens.set(key, entry);
    try {
      return `Bearer ${await entry.value}`;
    } catch (error) {
      if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
      throw error;
    }
  }

  // Token Authentication Specification: GET realm?service=…&scope=… (Basic credentials when we have them);
  // OAuth2 (POST grant_type=refresh_token) when the credential is an identity token.
  async #fetchToken(
    challenge: Challenge,
    scopes: readonly string[],
    credential: Credential | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    const { registry } = this.options;
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError("AUTH_CHALLENGE", `${registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError("AUTH_CHALLENGE", `${registry} sent a Bearer challenge with an invalid realm`);
    }
    const hasSecret = Boolean(credential?.identityToken || (credential?.username !== undefined && credential.password !== undefined));
    if (hasSecret && url.protocol !== "https:" && !this.options.plainHttpAllowed?.(url.host)) {
      throw new RegistryError("INSECURE_REALM", `${registry} asks for credentials over plain HTTP at ${url.origin}`, {
        hint: `ocify sends passwords over HTTP only to loopback or --insecure-registry hosts; use --insecure-registry ${url.host} if you trust the network`,
      });
    }
    const service = challenge.params.service;
    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    let method: "GET" | "POST" = "GET";
    if (credential?.identityToken) {
      method = "POST";
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credential.identityToken, client_id: "ocify" });
      if (service) form.set("service", service);
      if (scopes.length) form.set("scope", scopes.join(" "));
      body = Buffer.from(form.toString());
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service) url.searchParams.set("service", service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      if (credential?.username !== undefined && credential.password !== undefined) {
        url.searchParams.set("account", credential.username);
      }
    }
    const basic =
      !credential?.identityToken && credential?.username !== undefined && credential.password !== undefined
        ? `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`
        : undefined;
    const response = await httpRequest({
      method,
      url,
      headers,
      body,
      authorization: basic,
      registry,
      followRedirects: true,
      userAgent: this.options.userAgent,
      signal: this.options.signal,
    });
    if (response.status === 401 || response.status === 403) {
      await readErrorBody(response);
      throw unauthorized({ registry, credentialSource: credential?.source, what: `${registry}` });
    }
    if (response.status !== 200) {
      await readErrorBody(response);
      throw new RegistryError(`HTTP_${response.status}`, `getting a token for ${registry} from ${url.origin}: HTTP ${response.status}`, {
        status: response.status,
        hint: "the registry's token service failed; retry later",
      });
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
    return { token, expiresIn: typeof json.expires_in === "number" ? json.expires_in : 60 };
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(" ");
}
