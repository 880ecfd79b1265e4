/**
 * Downloads that survive a cut: when a blob's body breaks off (a reset, a connection closed early, a
 * stall past the idle timeout), the rest is asked for with `Range: bytes=N-` and the stream goes on where
 * it stopped; a registry that ignores Range sends the whole blob again and the bytes already had are
 * skipped. The caller verifies the digest and size over the whole stream, so a resumed download is
 * checked like any other.
 */
import { Readable } from "node:stream";
import { RegistryError } from "./errors.js";
import type { HttpResponse } from "./http.js";
import { isRetryableError, RetryBudget, retryReason } from "./retry.js";

/** The start of a `Content-Range: bytes START-END/TOTAL` header, or undefined. */
function rangeStart(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(value.trim());
  return match ? Number(match[1]) : undefined;
}

/**
 * The body of `first`, continued with `reopen(offset)` (a GET with a Range header) after each retryable
 * break, within the retry budget; `size` is the blob's, so that a break after the last byte is not resumed.
 */
export function resumableBody(
  first: HttpResponse,
  reopen: (offset: number) => Promise<HttpResponse>,
  size: number,
  what: string,
  signal?: AbortSignal,
): Readable {
  let response = first;
  // Destroyed by its reader (the copy failed elsewhere, the command is ending): the response in flight is
  // dropped and its break is not a cut to retry.
  let stopped = false;
  async function* generate(): AsyncGenerator<Buffer> {
    const budget = new RetryBudget(what, signal);
    let offset = 0;
    let skip = 0;
    let brokeAt = 0;
    for (;;) {
      try {
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
          skip = 0;
          offset += fresh.length;
          yield fresh;
        }
        return;
      } catch (error) {
        if (offset > brokeAt) budget.progress(); // bytes came since the last break: a fresh count
        brokeAt = offset;
        if (stopped || offset >= size || !isRetryableError(error) || !(await budget.next(`${retryReason(error)} after ${offset} bytes`)))
          throw error;
      }
      response = await reopen(offset);
      if (stopped) {
        response.body.destroy();
        return;
      }
      if (response.status === 206) {
        const start = rangeStart(response.header("content-range"));
        if (start !== offset) {
          response.body.resume();
          throw new RegistryError(
            "RANGE_INVALID",
            `${what}: asked for the rest from byte ${offset}, the registry sent from ${start ?? "?"}`,
          );
        }
      } else skip = offset; // the whole blob again: what was had is skipped
    }
  }
  const readable = Readable.from(generate(), { objectMode: false, highWaterMark: 1 << 20 });
  // Readable.from ends the generator only once its pending read settles, which for a stalled body may be
  // never: the body is destroyed first, so that read settles now.
  const destroyGenerator = readable._destroy.bind(readable);
  readable._destroy = (error, callback) => {
    stopped = true;
    response.body.destroy();
    destroyGenerator(error, callback);
  };
  return readable;
}
