/**
 * The one way the layer engine talks to its worker threads: requests and answers. The owner sends
 * `{ id, body }` (moving buffers with it when asked); the thread answers `{ id, result }` or
 * `{ id, error }`, and may send `{ id, note }` before its answer (the planner's head start). A thread
 * holds the process open only while a request of it is pending, so idle threads can be kept for the next
 * layer. A pool starts threads as work arrives, up to its size, and gives each request the idle one, else
 * the least busy. The compressing threads (deflate-worker.ts, zstd-worker.ts), the planner
 * (planner-worker.ts) and the block producer (producer-worker.ts) all speak this, and nothing else.
 */
import { parentPort, type Transferable, type Worker } from "node:worker_threads";
import { type ErrorData, errorFromData, errorToData } from "../errors.js";

interface Answer {
  id: number;
  result?: unknown;
  error?: ErrorData;
  note?: unknown;
}

interface Waiter {
  resolve(result: unknown): void;
  reject(error: unknown): void;
  onNote?: ((note: never) => void) | undefined;
}

/** A worker thread seen from its owner: request() sends work and resolves with the thread's answer. */
export class Thread {
  readonly worker: Worker;
  readonly #what: string;
  readonly #pending = new Map<number, Waiter>();
  #nextId = 0;
  #failure: Error | undefined;
  #exited = false;

  constructor(worker: Worker, what: string) {
    this.worker = worker;
    this.#what = what;
    worker.on("message", (answer: Answer) => this.#answer(answer));
    worker.on("error", (error) => this.#fail(error));
    worker.on("exit", () => {
      this.#exited = true;
      this.#fail(new Error(`the ${what} thread stopped unexpectedly`));
    });
    // After the listeners: adding a "message" listener refs the worker again (Node 20).
    worker.unref();
  }

  /** Requests sent and not yet answered. */
  get busy(): number {
    return this.#pending.size;
  }

  /** Whether the thread has failed or stopped (it takes no more requests). */
  get broken(): boolean {
    return this.#failure !== undefined || this.#exited;
  }

  /** Send `body` (moving `transfer` to the thread) and wait for the answer; `onNote` hears notes sent before it. */
  request<T>(body: unknown, transfer: readonly Transferable[] = [], onNote?: (note: never) => void): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const answer = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (result: unknown) => void, reject, onNote });
    });
    if (this.#pending.size === 1) this.worker.ref();
    this.worker.postMessage({ id, body }, transfer as Transferable[]);
    return answer;
  }

  #answer(answer: Answer): void {
    const waiter = this.#pending.get(answer.id);
    if (!waiter) return;
    if ("note" in answer) {
      waiter.onNote?.(answer.note as never);
      return;
    }
    this.#pending.delete(answer.id);
    if (this.#pending.size === 0) this.worker.unref();
    if (answer.error) waiter.reject(errorFromData(answer.error));
    else waiter.resolve(answer.result);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#pending.values()) waiter.reject(this.#failure);
    this.#pending.clear();
  }

  /** Stop the thread now (requests pending are rejected). */
  async terminate(): Promise<void> {
    this.#failure ??= new Error(`the ${this.#what} thread was stopped`);
    for (const waiter of this.#pending.values()) waiter.reject(this.#failure);
    this.#pending.clear();
    await this.worker.terminate();
  }
}

/** What a request handler returns: the result, and buffers to move with it instead of copying. */
export interface Reply {
  result: unknown;
  transfer?: readonly Transferable[];
}

/**
 * The thread's side: answer every request with `handle`'s reply, in the order they arrive (one at a
 * time: a handler that awaits keeps the next request waiting). A failure is sent back as the request's
 * error. `note` sends something about the request before its answer.
 */
export function serveRequests(handle: (body: never, note: (note: unknown) => void) => Reply | Promise<Reply>): void {
  const port = parentPort;
  if (!port) throw new Error("serveRequests() runs on a worker thread");
  let queue = Promise.resolve();
  port.on("message", ({ id, body }: { id: number; body: never }) => {
    queue = queue.then(async () => {
      try {
        const reply = await handle(body, (note) => port.postMessage({ id, note }));
        port.postMessage({ id, result: reply.result }, (reply.transfer ?? []) as Transferable[]);
      } catch (error) {
        port.postMessage({ id, error: errorToData(error) });
      }
    });
  });
}

/** Threads of one kind, started as requests arrive (up to `size`), kept while idle without holding the process. */
export class ThreadPool {
  readonly #threads: Thread[] = [];
  readonly #start: () => Worker;
  readonly #what: string;
  readonly size: number;

  constructor(start: () => Worker, what: string, size: number) {
    this.#start = start;
    this.#what = what;
    this.size = size;
  }

  /** Start a thread now when there is none, so that it boots before the first request. */
  warm(): void {
    this.#live();
    if (this.#threads.length === 0) this.#add();
  }

  #live(): Thread[] {
    for (let i = this.#threads.length - 1; i >= 0; i--) if (this.#threads[i]?.broken) this.#threads.splice(i, 1);
    return this.#threads;
  }

  #add(): Thread {
    const thread = new Thread(this.#start(), this.#what);
    this.#threads.push(thread);
    return thread;
  }

  /** The thread the next request goes to: an idle one, else a new one, else the least busy. */
  pick(): Thread {
    const threads = this.#live();
    const idle = threads.find((t) => t.busy === 0);
    if (idle) return idle;
    if (threads.length < this.size) return this.#add();
    return threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  /** Send a request to the thread pick() chooses. */
  request<T>(body: unknown, transfer?: readonly Transferable[]): Promise<T> {
    return this.pick().request<T>(body, transfer);
  }

  /** Requests pending on every thread. */
  get busy(): number {
    return this.#threads.reduce((sum, t) => sum + t.busy, 0);
  }

  /** Stop every thread. */
  async close(): Promise<void> {
    await Promise.all(this.#threads.splice(0).map((t) => t.terminate()));
  }
}
