/**
 * Registry failures as OcifyError subclasses: distribution error codes (distribution-spec "Error Codes")
 * and HTTP statuses mapped to one-line messages with a hint, and unreachable registries named by host.
 */
import { OcifyError, type OcifyErrorOptions } from "../errors.js";

// `what: ` before a message, or nothing when the caller adds its own context (uploads).
function subject(what: string): string {
  return what ? `${what}: ` : "";
}

/** Any failure reported by (or on the way to) a registry. */
export class RegistryError extends OcifyError {
  /** The HTTP status, when the registry answered. */
  readonly status: number | undefined;

  constructor(code: string, message: string, options: OcifyErrorOptions & { status?: number | undefined } = {}) {
    super(code, message, options);
    this.status = options.status;
  }
}

/** The manifest (tag or digest) does not exist: MANIFEST_UNKNOWN, or 404 on a manifest. */
export class ManifestUnknownError extends RegistryError {
  constructor(what: string, options: OcifyErrorOptions & { status?: number } = {}) {
    super("MANIFEST_UNKNOWN", `${subject(what)}manifest unknown`, { hint: "check the tag exists", ...options });
  }
}

/** The blob does not exist in the repository: BLOB_UNKNOWN, or 404 on a blob. */
export class BlobUnknownError extends RegistryError {
  constructor(what: string, options: OcifyErrorOptions & { status?: number } = {}) {
    super("BLOB_UNKNOWN", `${subject(what)}blob unknown`, { hint: "the registry lost the blob or the manifest is broken", ...options });
  }
}

/** The repository does not exist: NAME_UNKNOWN. */
export class NameUnknownError extends RegistryError {
  constructor(what: string, options: OcifyErrorOptions & { status?: number } = {}) {
    super("NAME_UNKNOWN", `${subject(what)}repository name not known to registry`, {
      hint: "check the repository name (and that you are logged in to see it)",
      ...options,
    });
  }
}

/** The registry wants credentials we do not have, or rejected the ones we sent: 401 / UNAUTHORIZED. */
export class UnauthorizedError extends RegistryError {
  constructor(message: string, options: OcifyErrorOptions & { status?: number } = {}) {
    super("UNAUTHORIZED", message, { status: 401, ...options });
  }
}

/** The credentials are valid but may not do this: 403 / DENIED. */
export class DeniedError extends RegistryError {
  constructor(what: string, options: OcifyErrorOptions & { status?: number; push?: boolean | undefined } = {}) {
    super("DENIED", `${subject(what)}requested access to the resource is denied`, {
      hint: options.push
        ? "the repository does not exist or your account may not push to it"
        : "the repository does not exist or your account may not pull from it",
      status: 403,
      ...options,
    });
  }
}

/** Rate limited: 429 / TOOMANYREQUESTS. */
export class TooManyRequestsError extends RegistryError {
  /** Seconds until the registry accepts requests again, when it said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    what: string,
    options: OcifyErrorOptions & { status?: number; registry?: string; retryAfterSeconds?: number | undefined } = {},
  ) {
    const login = options.registry ? `, or log in with ocify login ${options.registry} for a higher limit` : "";
    const when =
      options.retryAfterSeconds === undefined
        ? "wait before retrying"
        : `retry after ${new Date(Date.now() + options.retryAfterSeconds * 1000).toISOString().slice(11, 19)} UTC (in ${options.retryAfterSeconds} s)`;
    super("TOOMANYREQUESTS", `${subject(what)}too many requests`, {
      hint: `the registry limits your requests; ${when}${login}`,
      status: 429,
      ...options,
    });
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** The registry could not be reached: refused, not resolved, timed out, TLS failure. */
export class RegistryUnreachableError extends RegistryError {
  /** The proxy (`host:port`) that failed, when it was the proxy and not the registry. */
  readonly proxy: string | undefined;

  constructor(message: string, options: OcifyErrorOptions & { proxy?: string | undefined } = {}) {
    super("REGISTRY_UNREACHABLE", message, options);
    this.proxy = options.proxy;
  }
}

/** A distribution-spec error body: `{"errors":[{"code","message","detail"}]}`. */
export interface DistributionErrorBody {
  errors?: { code?: unknown; message?: unknown; detail?: unknown }[];
}

/** The first error code and message of an error body, if the body is one. */
export function parseErrorBody(body: Buffer | undefined): { code: string; message: string } | undefined {
  if (!body || body.length === 0) return undefined;
  try {
    const json = JSON.parse(body.toString("utf8")) as DistributionErrorBody;
    const first = json.errors?.[0];
    if (first && typeof first.code === "string") {
      return { code: first.code, message: typeof first.message === "string" ? first.message : first.code.toLowerCase() };
    }
  } catch {}
  return undefined;
}

/** What a failed request was about, so the error can say it in the user's words. */
export interface ErrorContext {
  /** The subject of the message (`127.0.0.1:5000/team/app:1.0`), or "" when the caller adds context itself. */
  what: string;
  /** The registry host, for authentication messages. */
  registry: string;
  /** Whether the request was about a manifest or a blob (decides what a bare 404 means). */
  kind: "manifest" | "blob" | "upload" | "other";
  /** Where credentials came from, when some were sent (for the 401 hint). */
  credentialSource?: string | undefined;
  /** The request's method: a 405 to a write means a registry that takes no pushes. */
  method?: string | undefined;
  /** Whether the request needed push access (for the 403 hint). */
  push?: boolean | undefined;
}

/** The part of a response an error message may use: its headers. */
export interface ResponseHeaders {
  header(name: string): string | undefined;
}

/**
 * Seconds until a rate limit resets, from `Retry-After` (seconds or an HTTP date) or `RateLimit-Reset`
 * (seconds, or a Unix time as some registries send).
 */
export function retryAfterSeconds(response: ResponseHeaders | undefined, now = Date.now()): number | undefined {
  const retryAfter = response?.header("retry-after");
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter);
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now) / 1000));
  }
  const reset = response?.header("ratelimit-reset") ?? response?.header("x-ratelimit-reset");
  if (reset && /^\d+$/.test(reset.trim())) {
    const value = Number(reset);
    // Larger than a year of seconds: a Unix time, not a delay.
    return value > 31_536_000 ? Math.max(0, Math.ceil(value - now / 1000)) : value;
  }
  return undefined;
}

/** The message for a 401 that no credentials or retry could fix. */
export function unauthorized(context: Pick<ErrorContext, "registry" | "credentialSource" | "what">): UnauthorizedError {
  if (context.credentialSource) {
    return new UnauthorizedError(`authentication failed for ${context.registry}`, {
      hint: `check the user name and password in ${context.credentialSource}, or log in again with ocify login ${context.registry}`,
    });
  }
  return new UnauthorizedError(`${subject(context.what)}authentication required`, {
    hint: `log in with ocify login ${context.registry}, or pass --creds USER --password-stdin`,
  });
}

/** Map an HTTP status and distribution error body to an error class with a one-line message. */
export function registryError(status: number, body: Buffer | undefined, context: ErrorContext, response?: ResponseHeaders): RegistryError {
  const parsed = parseErrorBody(body);
  const code = parsed?.code;
  const detail = parsed?.message;
  const { what } = context;
  if (status === 401 || code === "UNAUTHORIZED") return unauthorized(context);
  if (status === 403 || code === "DENIED") return new DeniedError(what, { status, push: context.push });
  if (status === 429 || code === "TOOMANYREQUESTS") {
    return new TooManyRequestsError(what, { status, registry: context.registry, retryAfterSeconds: retryAfterSeconds(response) });
  }
  switch (code) {
    case "MANIFEST_UNKNOWN":
      return new ManifestUnknownError(what, { status });
    case "BLOB_UNKNOWN":
      return new BlobUnknownError(what, { status });
    case "NAME_UNKNOWN":
      return new NameUnknownError(what, { status });
    case "MANIFEST_BLOB_UNKNOWN":
      return new RegistryError(code, `${subject(what)}manifest references a blob the registry does not have`, {
        hint: "push the blobs before the manifest",
        status,
      });
    case "MANIFEST_INVALID":
    case "MANIFEST_UNVERIFIED":
      return new RegistryError(code, `${subject(what)}the registry rejected the manifest${detail ? `: ${detail}` : ""}`, {
        hint: "the registry may not support this manifest type",
        status,
      });
    case "DIGEST_INVALID":
    case "SIZE_INVALID":
      return new RegistryError(
        code,
        `${subject(what)}the registry says the content does not match its ${code === "SIZE_INVALID" ? "size" : "digest"}`,
        {
          hint: "the content changed while it was sent; retry",
          status,
        },
      );
    case "BLOB_UPLOAD_UNKNOWN":
    case "BLOB_UPLOAD_INVALID":
      return new RegistryError(code, `${subject(what)}the registry lost or rejected the upload${detail ? `: ${detail}` : ""}`, {
        hint: "retry",
        status,
      });
    case "NAME_INVALID":
    case "TAG_INVALID":
      return new RegistryError(code, `${subject(what)}${detail ?? "invalid name"}`, { status });
    case "UNSUPPORTED":
      return new RegistryError(code, `${subject(what)}the registry does not support this operation`, {
        hint: "the registry's configuration does not allow it",
        status,
      });
  }
  if (status === 405 && context.method && context.method !== "GET" && context.method !== "HEAD") {
    return new RegistryError("READ_ONLY", `${subject(what)}registry ${context.registry} refuses pushes (HTTP 405): it is read-only`, {
      hint: "push to another registry, or ask its operator to allow pushes; mirrors and pull-through caches take none",
      status,
    });
  }
  if (status === 405) {
    return new RegistryError("UNSUPPORTED", `${subject(what)}the registry does not allow this operation (HTTP 405)`, {
      hint: "the registry's configuration does not allow it",
      status,
    });
  }
  if (status === 404) {
    if (context.kind === "manifest") return new ManifestUnknownError(what, { status });
    if (context.kind === "blob") return new BlobUnknownError(what, { status });
  }
  const text = detail ? `: ${detail}` : "";
  if (status >= 500) {
    return new RegistryError(`HTTP_${status}`, `${subject(what)}registry ${context.registry} failed with HTTP ${status}${text}`, {
      hint: "the registry has a problem; retry later",
      status,
    });
  }
  return new RegistryError(code ?? `HTTP_${status}`, `${subject(what)}registry ${context.registry} answered HTTP ${status}${text}`, {
    status,
  });
}
