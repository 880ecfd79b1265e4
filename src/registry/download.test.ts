/**
 * resumableBody on its own: a body cut by the network is continued from where it stopped, and a body its
 * reader gives up on is dropped at once, with no retry announced (the copy failed elsewhere and its error
 * line must be the last line said).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { finished } from "node:stream/promises";
import { describe, it } from "node:test";
import { resumableBody } from "./download.js";
import type { HttpResponse } from "./http.js";
import { onRetry, RetryBudget } from "./retry.js";

function response(body: PassThrough, status = 200, contentRange?: string): HttpResponse {
  const headers = contentRange ? { "content-range": contentRange } : {};
  return {
    status,
    headers,
    body,
    url: new URL("http://127.0.0.1/v2/x/blobs/sha256:0"),
    header: (name) => (name === "content-range" ? contentRange : undefined),
    headerValues: () => [],
  };
}

function cutError(): Error {
  return Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
}

describe("resumableBody", () => {
  it("continues a cut body with the rest from the offset reached", { timeout: 60_000 }, async () => {
    const first = new PassThrough();
    const offsets: number[] = [];
    const body = resumableBody(
      response(first),
      async (offset) => {
        offsets.push(offset);
        const rest = new PassThrough();
        rest.end(Buffer.from("world"));
        return response(rest, 206, `bytes ${offset}-9/10`);
      },
      10,
      "blob test-cut",
    );
    const retries: string[] = [];
    const stop = onRetry((event) => retries.push(event.what));
    try {
      first.write(Buffer.from("hello"));
      setImmediate(() => first.destroy(cutError()));
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), "helloworld");
      assert.deepEqual(offsets, [5]);
      assert.deepEqual(retries, ["blob test-cut"]);
    } finally {
      stop();
    }
  });

  it("drops a stalled body when its reader destroys it, and announces no retry", { timeout: 60_000 }, async () => {
    const first = new PassThrough();
    let reopened = 0;
    const body = resumableBody(
      response(first),
      async () => {
        reopened++;
        return response(new PassThrough());
      },
      1 << 20,
      "blob test-stalled",
    );
    const retries: string[] = [];
    const stop = onRetry((event) => retries.push(event.what));
    try {
      first.write(Buffer.alloc(1000));
      await once(body, "data"); // the next read now waits on a body that sends nothing more
      body.destroy();
      await finished(body).catch(() => {});
      assert.equal(first.destroyed, true, "the response's body is released");
      assert.equal(reopened, 0);
      assert.deepEqual(retries, []);
    } finally {
      stop();
    }
  });
});

describe("RetryBudget", () => {
  it("offers no further try once the operation's signal has aborted", async () => {
    const controller = new AbortController();
    const budget = new RetryBudget("GET test", controller.signal);
    assert.notEqual(budget.delayFor(), undefined);
    controller.abort(new Error("called off"));
    assert.equal(budget.delayFor(), undefined);
    assert.equal(await budget.next("ECONNRESET"), false);
  });
});
