/**
 * Feeding a layer's blob to a consumer (an upload) while it is built: a Readable whose reads wake the
 * producer, so the consumer's pace is the build's.
 */
import { Readable } from "node:stream";

/** Feeds `tee` with backpressure; a consumer that stops early is let go, one that fails fails the build. */
export class TeeFeed {
  readonly stream: Readable;
  readonly #result: Promise<void>;
  #wake: (() => void) | undefined;
  #settled = false;
  #error: unknown;

  constructor(tee: (content: Readable) => Promise<void>) {
    this.stream = new Readable({
      highWaterMark: 2 << 20,
      read: () => {
        const wake = this.#wake;
        this.#wake = undefined;
        wake?.();
      },
    });
    // fail() destroys the stream with the build's error; the consumer may have stopped listening by then.
    this.stream.on("error", () => {});
    this.#result = Promise.resolve()
      .then(() => tee(this.stream))
      .then(
        () => {
          this.#settled = true;
        },
        (error: unknown) => {
          this.#settled = true;
          this.#error = error ?? new Error("tee failed");
        },
      );
  }

  #check(): void {
    if (this.#error !== undefined) throw this.#error;
  }

  async push(chunk: Buffer): Promise<void> {
    this.#check();
    if (this.#settled) return;
    if (!this.stream.push(chunk)) {
      await Promise.race([new Promise<void>((resolve) => (this.#wake = resolve)), this.#result]);
      this.#check();
    }
  }

  async end(): Promise<void> {
    this.#check();
    if (!this.#settled) this.stream.push(null);
    await this.#result;
    this.#check();
  }

  async fail(error: unknown): Promise<void> {
    this.stream.destroy(error instanceof Error ? error : new Error(String(error)));
    await this.#result;
  }
}
