/** The fault proxy itself: repeatable, and each fault is what a client really sees, in front of the real registry. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { type FaultKind, type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { startRegistry, type TestRegistry } from "./registry.js";

interface Seen {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body: Buffer;
  error?: string;
}

/** One raw request; never throws, reports what the client saw. */
function send(host: string, method: string, path: string, body?: Buffer, timeoutMs = 10_000): Promise<Seen> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const headers = body ? { "content-length": String(body.length), "content-type": "application/octet-stream" } : {};
    const req = request(`http://${host}${path}`, { method, headers, agent: false }, (res) => {
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", (e) =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error: (e as NodeJS.ErrnoException).code ?? e.message }),
      );
      res.on("aborted", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error: "aborted" }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
    req.on("error", (e) => resolve({ body: Buffer.concat(chunks), error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end(body);
  });
}

describe("fault proxy", () => {
  let registry: TestRegistry;
  const blob = randomBytes(256 << 10);
  const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
  const proxies: FaultProxy[] = [];
  const proxy = async (kinds: FaultKind[], rate = 1, extra = {}): Promise<FaultProxy> => {
    const started = await startFaultProxy(registry.host, { seed: 1, rate, kinds, stallMs: 300, ...extra });
    proxies.push(started);
    return started;
  };

  before(async () => {
    registry = await startRegistry();
    const post = await send(registry.host, "POST", "/v2/fp/blobs/uploads/", Buffer.alloc(0));
    const location = new URL(String(post.headers?.location), registry.url);
    location.searchParams.set("digest", digest);
    const put = await send(registry.host, "PUT", `${location.pathname}${location.search}`, blob);
    assert.equal(put.status, 201);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await registry.stop();
  });

  it("repeats the same faults for the same seed and request sequence", async () => {
    const sequence = async (): Promise<(string | undefined)[]> => {
      const p = await startFaultProxy(registry.host, { seed: 42, rate: 0.4, kinds: ["status-500", "status-503", "stall"], stallMs: 10 });
      for (let i = 0; i < 30; i++) await send(p.host, "GET", "/v2/");
      await p.stop();
      return p.requests.map((r) => r.fault);
    };
    const first = await sequence();
    assert.deepEqual(await sequence(), first);
    const faulted = first.filter((f) => f !== undefined).length;
    assert.ok(faulted > 3 && faulted < 27, `about 40% of 30 requests faulted: ${faulted}`);
    assert.equal(new Set(first.filter(Boolean)).size, 3, "every kind chosen");
  });

  it("forwards untouched traffic unchanged", async () => {
    const p = await proxy([], 0);
    const got = await send(p.host, "GET", `/v2/fp/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(blob));
  });

  it("cuts a download short, with a reset or a clean close", async () => {
    for (const kind of ["reset-download", "truncate"] as const) {
      const p = await proxy([kind]);
      const got = await send(p.host, "GET", `/v2/fp/blobs/${digest}`);
      assert.ok(got.error !== undefined || got.body.length < blob.length, `${kind}: ${JSON.stringify(got.error)}`);
      assert.ok(got.body.length < blob.length, `${kind}: ${got.body.length} bytes of ${blob.length}`);
      assert.deepEqual(p.faults()[kind], 1);
    }
  });

  it("answers 5xx and 429 with Retry-After itself, the registry never seeing the request", async () => {
    for (const status of [500, 502, 503, 429]) {
      const p = await proxy([`status-${status}` as FaultKind]);
      const got = await send(p.host, "PUT", "/v2/fp/blobs/uploads/nowhere", Buffer.alloc(1000));
      assert.equal(got.status, status);
      if (status === 429) assert.equal(got.headers?.["retry-after"], "1");
      assert.equal(p.forwardedBytes(), 0);
    }
  });

  it("drops an upload mid-body before the registry sees any of it (buffered), or after part of it (streamed)", async () => {
    const buffered = await proxy(["reset-upload"]);
    const post = await send(registry.host, "POST", "/v2/fp/blobs/uploads/", Buffer.alloc(0));
    const location = new URL(String(post.headers?.location), registry.url);
    const got = await send(buffered.host, "PATCH", `${location.pathname}${location.search}`, blob);
    assert.ok(got.error !== undefined, "the client sees the connection drop");
    assert.equal(buffered.forwardedBytes(), 0);
    assert.ok((buffered.requests[0]?.receivedBytes ?? 0) > 0);

    const streamed = await proxy(["reset-upload"], 1, { bufferRequests: false, seed: 3 });
    const dropped = await send(streamed.host, "PATCH", `${location.pathname}${location.search}`, blob);
    assert.ok(dropped.error !== undefined);
    assert.ok(streamed.forwardedBytes() > 0 && streamed.forwardedBytes() < blob.length, `${streamed.forwardedBytes()} forwarded`);
  });

  it("stalls, then drops the connection", async () => {
    const p = await proxy(["stall"]);
    const started = performance.now();
    const got = await send(p.host, "GET", "/v2/");
    assert.ok(got.error !== undefined && got.status === undefined);
    assert.ok(performance.now() - started >= 250);
  });
});
