/** Typed errors: every expected failure is an OcifyError with a one-line, user-facing message. */

export interface OcifyErrorOptions {
  /** What the user can do about it, shown in parentheses after the message. */
  hint?: string | undefined;
  cause?: unknown;
}

/** Base class of every failure ocify expects; the CLI prints `message` (and `hint`) on one line. */
export class OcifyError extends Error {
  /** A stable machine-readable code, e.g. `MANIFEST_UNKNOWN`. */
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: OcifyErrorOptions = {}) {
    super(oneLine(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint === undefined ? undefined : oneLine(options.hint);
  }

  /** The message and hint as the CLI prints them. */
  get userMessage(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** Wrong command-line usage: exit code 2. */
export class UsageError extends OcifyError {
  constructor(message: string, options: OcifyErrorOptions = {}) {
    super("USAGE", message, options);
  }
}

/** A reference (image name, transport reference) that does not parse. */
export class InvalidReferenceError extends OcifyError {
  constructor(reference: string, reason: string, options: OcifyErrorOptions = {}) {
    super("INVALID_REFERENCE", `invalid reference "${reference}": ${reason}`, options);
  }
}

/** Content whose digest or size is not what its descriptor says. */
export class DigestMismatchError extends OcifyError {
  constructor(what: string, expected: string, actual: string, options: OcifyErrorOptions = {}) {
    super("DIGEST_INVALID", `${what}: digest mismatch: expected ${expected}, got ${actual}`, {
      hint: "the content was corrupted in transit or at rest; retry, and clear the cache if it persists",
      ...options,
    });
  }
}

/** Content that is larger or smaller than its descriptor says. */
export class SizeMismatchError extends OcifyError {
  constructor(what: string, expected: number, actual: number, options: OcifyErrorOptions = {}) {
    super("SIZE_INVALID", `${what}: size mismatch: expected ${expected} bytes, got ${actual}`, {
      hint: "the content was truncated or corrupted; retry",
      ...options,
    });
  }
}

/** A file or directory given by the user that cannot be used. */
export class InputError extends OcifyError {
  constructor(message: string, options: OcifyErrorOptions = {}) {
    super("INPUT", message, options);
  }
}

/** A manifest, index, config or archive that does not follow the specs. */
export class InvalidImageError extends OcifyError {
  constructor(message: string, options: OcifyErrorOptions = {}) {
    super("INVALID_IMAGE", message, options);
  }
}

/** No image matches the requested platform. */
export class PlatformNotFoundError extends OcifyError {
  constructor(message: string, options: OcifyErrorOptions = {}) {
    super("PLATFORM_NOT_FOUND", message, options);
  }
}

/** The run was stopped by a signal; the CLI exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). */
export class InterruptedError extends OcifyError {
  readonly signal: NodeJS.Signals;

  constructor(signal: NodeJS.Signals) {
    super("INTERRUPTED", `interrupted by ${signal}`, { hint: "nothing was left half-written; run the command again to finish" });
    this.signal = signal;
  }

  /** The exit status a shell expects from a process stopped by this signal. */
  get exitCode(): number {
    return 128 + (signalNumbers[this.signal] ?? 1);
  }
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

const systemProblems: Record<string, { what: string; hint: string }> = {
  ENOSPC: {
    what: "no space left on the device",
    hint: "free some space there, shrink the cache with ocify cache prune, or write elsewhere",
  },
  EDQUOT: { what: "disk quota exceeded", hint: "free some space, or write elsewhere" },
  EFBIG: { what: "file too large", hint: "check ulimit -f and the file system's limits" },
  EROFS: { what: "read-only file system", hint: "write elsewhere: another `tags`, `cacheDir`, OCIFY_CACHE_DIR or TMPDIR" },
  EACCES: { what: "permission denied", hint: "fix its permissions, or use another `tags`, `cacheDir`, OCIFY_CACHE_DIR or TMPDIR" },
  EPERM: { what: "operation not permitted", hint: "use another `tags`, `cacheDir`, OCIFY_CACHE_DIR or TMPDIR" },
  EMFILE: { what: "too many open files", hint: "raise the limit with ulimit -n" },
  ENFILE: { what: "too many open files in the system", hint: "raise the system's limit" },
  EIO: { what: "input/output error", hint: "the disk may be failing; check the system log" },
};

const systemActions: Record<string, string> = { mkdir: "create", unlink: "remove", rmdir: "remove", scandir: "list", writev: "write" };

/**
 * A failure of the local system (a full disk, a read-only or forbidden directory, too many open files)
 * as one line naming the path (the error's own, unless it is one of ocify's temp files or has none:
 * then `path`, what the user knows, such as the target) and what to do; undefined for anything else.
 */
export function fromSystemError(error: unknown, path?: string): OcifyError | undefined {
  const { code, syscall, path: own } = (error ?? {}) as NodeJS.ErrnoException;
  const problem = code === undefined ? undefined : systemProblems[code];
  if (!problem || error instanceof OcifyError) return undefined;
  const temp = own !== undefined && /(^|\/)\.[^/]*\.tmp$/.test(own);
  const where = own !== undefined && !temp ? own : (path ?? own);
  const action = syscall ? (systemActions[syscall] ?? syscall) : "use";
  return new OcifyError(code as string, `cannot ${action}${where ? ` ${where}` : ""}: ${problem.what}`, {
    hint: problem.hint,
    cause: error,
  });
}

/** Run `fn`; a system failure (a full disk…) comes out as fromSystemError's one line naming `path`. */
export async function withSystemPath<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw fromSystemError(error, path) ?? error;
  }
}

/** Return the error with `context: ` prepended to its message when it is an OcifyError. */
export function addContext(context: string, error: unknown): unknown {
  if (error instanceof OcifyError && !(error instanceof InterruptedError) && !error.message.startsWith(`${context}: `)) {
    error.message = `${context}: ${error.message}`;
  }
  return error;
}

/** Collapse whitespace so a message is always one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** An error as plain data, to cross a worker thread boundary. */
export interface ErrorData {
  code?: string | undefined;
  message: string;
  hint?: string | undefined;
  stack?: string | undefined;
}

/** An error as data: its code and hint when it is an OcifyError, its stack when it is a bug. */
export function errorToData(error: unknown): ErrorData {
  const known = error instanceof OcifyError ? error : fromSystemError(error);
  if (known) return { code: known.code, message: known.message, hint: known.hint };
  return { message: (error as Error)?.message ?? String(error), stack: (error as Error)?.stack };
}

/** The error again on this side: a usage or input error keeps its class (and so its exit code). */
export function errorFromData(data: ErrorData): Error {
  const options = { hint: data.hint };
  if (data.code === "USAGE") return new UsageError(data.message, options);
  if (data.code === "INPUT") return new InputError(data.message, options);
  if (data.code !== undefined) return new OcifyError(data.code, data.message, options);
  const error = new Error(data.message);
  if (data.stack) error.stack = data.stack;
  return error;
}
