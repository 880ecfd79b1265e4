/**
 * When a request to a registry is tried again: what is safe to repeat (connection resets and timeouts,
 * 408, 429, 500, 502, 503, 504), after how long (exponential backoff with full jitter, or the registry's
 * Retry-After when it says more), and until when (a count and a time budget per operation; --retry and
 * --retry-max-time). What is never repeated: 401/403/404 and other answers that are the registry's word,
 * and digest or size mismatches. Each retry is announced to the listeners (the CLI prints it).
 */
import { OcifyError } from "../errors.js";
import { RegistryError, RegistryUnreachableError } from "./errors.js";

/** How many times, and for how long, an operation is tried again. */
export interface RetryPolicy {
  /** Tries after the first (default 5); 0 disables retries. */
  retries: number;
  /** The time an operation may take from its first try, waits included (default 120 s). */
  maxTimeMs: number;
  /** The first backoff's ceiling; each next one doubles it (default 250 ms). */
  baseDelayMs: number;
  /** The largest backoff ocify chooses (default 20 s); a Retry-After may ask for more, within maxTimeMs. */
  maxDelayMs: number;
}

/** How long a registry may stay silent. */
export interface TimeoutPolicy {
  /** To open a connection (TCP and TLS; default 10 s). */
  connectMs: number;
  /** With no byte in either direction, once connected (default 120 s). */
  idleMs: number;
}

export const defaultRetryPolicy: Readonly<RetryPolicy> = { retries: 5, maxTimeMs: 120_000, baseDelayMs: 250, maxDelayMs: 20_000 };
export const defaultTimeouts: Readonly<TimeoutPolicy> = { connectMs: 10_000, idleMs: 120_000 };

let retry: RetryPolicy = { ...defaultRetryPolicy };
let timeouts: TimeoutPolicy = { ...defaultTimeouts };

type Optional<T> = { [K in keyof T]?: T[K] | undefined };
const defined = <T extends object>(values: Optional<T>): Partial<T> =>
  Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;

/** Change the retry policy of this process (the CLI's --retry and --retry-max-time). */
export function setRetryPolicy(next: Optional<RetryPolicy>): void {
  retry = { ...retry, ...defined<RetryPolicy>(next) };
}

/** The retry policy in force. */
export function retryPolicy(): Readonly<RetryPolicy> {
  return retry;
}

/** Change the timeouts of this process (the CLI's --connect-timeout and --idle-timeout). */
export function setTimeouts(next: Optional<TimeoutPolicy>): void {
  timeouts = { ...timeouts, ...defined<TimeoutPolicy>(next) };
}

/** The timeouts in force. */
export function timeoutPolicy(): Readonly<TimeoutPolicy> {
  return timeouts;
}

/** One retry, as announced. */
export interface RetryEvent {
  /** What is being retried: `GET https://host/v2/…` or an upload's subject. */
  what: string;
  /** Why: `HTTP 503`, `connection reset`, … */
  reason: string;
  /** The try about to be made (2 = the first retry). */
  attempt: number;
  delayMs: number;
}

const listeners = new Set<(event: RetryEvent) => void>();

/** Hear every retry of this process; returns the function that stops it. */
export function onRetry(listener: (event: RetryEvent) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Statuses that say "try again later", not "no". */
export const retryableStatuses: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

const retryableCodes = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
  "IDLE_TIMEOUT",
  "RESPONSE_ABORTED",
]);

/** Whether a failure is a network blip worth another try (not a refusal, a wrong host, a certificate, a mismatch). */
export function isRetryableError(error: unknown): boolean {
  if (error instanceof RegistryError && error.status !== undefined) return retryableStatuses.has(error.status);
  if (error instanceof OcifyError && !(error instanceof RegistryUnreachableError)) return false;
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === "string" && retryableCodes.has(code)) return true;
    if (message === "aborted" || message === "socket hang up") return true;
  }
  return false;
}

/** A Retry-After header (seconds or an HTTP date) in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The wait before try `attempt` (2 = first retry): full jitter over an exponentially growing ceiling. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 2));
  return Math.round(random() * ceiling);
}

/**
 * The tries of one operation: next() says whether another may be made and waits for it (announcing it),
 * or returns false when the count or the time budget is spent (a Retry-After beyond the budget ends it
 * too). progress() starts the count again, for an operation made of steps (an upload's chunks).
 */
export class RetryBudget {
  #attempt = 1;
  #started = Date.now();
  readonly #policy: RetryPolicy;

  constructor(
    readonly what: string,
    readonly signal?: AbortSignal | undefined,
    policy: RetryPolicy = retry,
  ) {
    this.#policy = policy;
  }

  /** The try being made (1 = the first). */
  get attempt(): number {
    return this.#attempt;
  }

  /** A step succeeded: the next failure starts a fresh count (the time budget too). */
  progress(): void {
    this.#attempt = 1;
    this.#started = Date.now();
  }

  /**
   * The wait before the next try, or undefined when none is left: the count is spent, or the wait (a
   * Retry-After asking more than the backoff) would end past the time budget.
   */
  delayFor(retryAfterMs?: number): number | undefined {
    if (this.signal?.aborted) return undefined; // the operation was called off: no try is announced
    if (this.#attempt > this.#policy.retries) return undefined;
    const chosen = backoffMs(this.#policy, this.#attempt + 1);
    const delayMs = retryAfterMs !== undefined ? Math.max(retryAfterMs, chosen) : chosen;
    return Date.now() - this.#started + delayMs > this.#policy.maxTimeMs ? undefined : delayMs;
  }

  /** Announce the next try (after `reason`) and wait `delayMs` for it. */
  async wait(delayMs: number, reason: string): Promise<void> {
    this.#attempt++;
    const event: RetryEvent = { what: this.what, reason, attempt: this.#attempt, delayMs };
    for (const listener of listeners) listener(event);
    await sleep(delayMs, this.signal);
  }

  /** Wait for the next try after `reason`; false when none is left. */
  async next(reason: string, retryAfterMs?: number): Promise<boolean> {
    const delayMs = this.delayFor(retryAfterMs);
    if (delayMs === undefined) return false;
    await this.wait(delayMs, reason);
    return true;
  }
}

/** Wait `ms`, or fail with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The reason of a failure, for a retry line: `HTTP 503`, or the network error's first words. */
export function retryReason(failure: { status: number } | unknown): string {
  if (typeof failure === "object" && failure !== null && "status" in failure && typeof failure.status === "number") {
    return `HTTP ${failure.status}`;
  }
  const code = (failure as { code?: unknown })?.code;
  const cause = (failure as { cause?: { code?: unknown } })?.cause?.code;
  return typeof cause === "string" ? cause : typeof code === "string" && code !== "REGISTRY_UNREACHABLE" ? code : "connection failed";
}
