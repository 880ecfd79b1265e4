/** The docker:// transport against Debian's real docker-registry (no mocks); faults come from a loopback proxy in front of it. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpGet } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import type { Digest } from "../digest.js";
import { DigestMismatchError, SizeMismatchError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import { parseImageIndex, parseImageManifest, rawManifest } from "../image/manifest.js";
import type { ProgressEvent } from "../progress.js";
import { parseReference } from "../reference.js";
import { ManifestUnknownError, RegistryUnreachableError, UnauthorizedError } from "../registry/errors.js";
import { writeBaseImageLayout, writeMultiArchLayout } from "../test-support/base-image.js";
import { runOk } from "../test-support/cli.js";
import {
  freePort,
  pushOciLayout,
  type RegistryProxy,
  startRegistry,
  startRegistryProxy,
  type TestRegistry,
} from "../test-support/registry.js";
import { validateImage } from "../validate.js";
import { openRegistryDestination, openRegistrySource } from "./registry.js";
import { openSource } from "./transport.js";

const source = (ref: string) => openRegistrySource(parseReference(ref), {});
const destination = (ref: string) => openRegistryDestination(parseReference(ref), {});

async function drain(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb();
      },
    }),
  );
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/** Random bytes and the descriptor of a blob holding them. */
function randomBlob(size: number): { data: Buffer; descriptor: Descriptor } {
  const data = randomBytes(size);
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;
  return { data, descriptor: { mediaType: "application/octet-stream", digest, size } };
}

function skopeoRaw(ref: string, creds?: string): Promise<string> {
  return runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", ...(creds ? ["--creds", creds] : []), `docker://${ref}`]);
}

function assertOneLine(error: unknown): void {
  assert.ok(error instanceof Error);
  assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
}

describe("docker:// transport against docker-registry", () => {
  let registry: TestRegistry;
  let work: string;
  let baseDigest: string;
  const proxies: RegistryProxy[] = [];

  before(async () => {
    registry = await startRegistry();
    work = mkdtempSync(join(tmpdir(), "ocify-registry-test-"));
    baseDigest = writeBaseImageLayout(join(work, "base"), "latest", { seed: 7 });
    await pushOciLayout(join(work, "base"), "latest", `${registry.host}/lib/base:latest`);
  });

  after(async () => {
    for (const proxy of proxies) await proxy.stop();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function proxy(options?: Parameters<typeof startRegistryProxy>[1]): Promise<RegistryProxy> {
    const started = await startRegistryProxy(registry.host, options);
    proxies.push(started);
    return started;
  }

  it("pings /v2/ and falls back to plain HTTP on loopback", async () => {
    const { registryClient } = await import("../registry/client.js");
    const client = registryClient(registry.host);
    const base = await client.base();
    assert.equal(base.protocol, "http:");
    assert.equal(base.host, registry.host);
  });

  it("pulls a skopeo-pushed image by tag and by digest, verifying blobs", async () => {
    const src = await source(`${registry.host}/lib/base:latest`);
    const top = await src.getManifest();
    assert.equal(top.digest, baseDigest);
    assert.equal(top.mediaType, "application/vnd.oci.image.manifest.v1+json");
    const byDigest = await source(`${registry.host}/lib/base@${baseDigest}`);
    assert.deepEqual((await byDigest.getManifest()).bytes, top.bytes);
    assert.deepEqual((await src.getManifest(baseDigest as Digest)).bytes, top.bytes);
    const manifest = parseImageManifest(top);
    for (const blob of [manifest.config, ...manifest.layers]) {
      assert.deepEqual(await drain(await src.getBlob(blob)), { digest: blob.digest, size: blob.size });
    }
    const summary = await validateImage(src);
    assert.equal(summary.manifestDigest, baseDigest);
    // A descriptor whose digest is wrong is caught while streaming, not trusted.
    const layer = manifest.layers[0] as Descriptor;
    await assert.rejects(drain(await src.getBlob({ ...layer, size: layer.size - 1 })), SizeMismatchError);
  });

  it("pushes a copy (blobs, then manifest) that skopeo reads back byte for byte", async () => {
    const counter = await proxy();
    const events: ProgressEvent[] = [];
    const src = await source(`${registry.host}/lib/base:latest`);
    // Through the proxy the destination is another registry name, so nothing is mounted: every blob is sent.
    const dst = await destination(`${counter.host}/team/copy:1.0`);
    const result = await copyImage(src, dst, { progress: (e) => events.push(e) });
    assert.equal(result.digest, baseDigest);
    const raw = await skopeoRaw(`${registry.host}/team/copy:1.0`);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, baseDigest);
    const inspect = JSON.parse(await runOk("skopeo", ["inspect", "--tls-verify=false", `docker://${registry.host}/team/copy:1.0`]));
    assert.equal(inspect.Digest, baseDigest);
    const manifest = parseImageManifest(await src.getManifest());
    const blobBytes = [manifest.config, ...manifest.layers].reduce((sum, b) => sum + b.size, 0);
    const puts = counter.requests.filter((r) => r.method === "PUT" && r.url.includes("/blobs/uploads/"));
    assert.equal(puts.length, 2, "one monolithic PUT per blob");
    assert.equal(
      puts.reduce((sum, r) => sum + r.bodyBytes, 0),
      blobBytes,
    );
    assert.ok(!counter.requests.some((r) => r.method === "PATCH"), "no chunked upload");
    const manifestPut = counter.requests.findIndex((r) => r.method === "PUT" && r.url.endsWith("/manifests/1.0"));
    const lastUpload = Math.max(...counter.requests.map((r, i) => (r.url.includes("/blobs/uploads/") ? i : -1)));
    assert.ok(manifestPut > lastUpload, "manifest after blobs");
    assert.equal(counter.requests[manifestPut]?.headers["content-type"], "application/vnd.oci.image.manifest.v1+json");
    assert.deepEqual(
      events
        .filter((e) => e.phase === "done")
        .map((e) => e.kind)
        .sort(),
      ["config", "layer"],
    );

    // The second push finds every blob with HEAD and sends no blob bytes.
    counter.requests.length = 0;
    events.length = 0;
    await copyImage(await source(`${registry.host}/lib/base:latest`), await destination(`${counter.host}/team/copy:1.1`), {
      progress: (e) => events.push(e),
    });
    assert.equal(counter.requests.filter((r) => r.method === "HEAD" && r.url.includes("/blobs/")).length, 2);
    assert.ok(!counter.requests.some((r) => r.url.includes("/blobs/uploads/")), "no upload started");
    const manifestBytes = counter.requests.filter((r) => r.url.includes("/manifests/")).reduce((sum, r) => sum + r.bodyBytes, 0);
    assert.equal(counter.uploadedBytes(), manifestBytes);
    assert.deepEqual(
      events.map((e) => e.phase),
      ["skipped", "skipped"],
    );
  });

  it("mounts blobs from another repository of the same registry", async () => {
    const counter = await proxy();
    await copyImage(await source(`${registry.host}/lib/base:latest`), await destination(`${counter.host}/seed/base:1`));
    counter.requests.length = 0;
    const events: ProgressEvent[] = [];
    await copyImage(await source(`${counter.host}/seed/base:1`), await destination(`${counter.host}/team/mounted:1`), {
      progress: (e) => events.push(e),
    });
    assert.deepEqual(
      events.map((e) => e.phase),
      ["mounted", "mounted"],
    );
    const mounts = counter.requests.filter((r) => r.method === "POST" && r.url.includes("mount="));
    assert.equal(mounts.length, 2);
    assert.ok(mounts.every((r) => r.status === 201 && r.url.includes("from=seed%2Fbase")));
    assert.ok(!counter.requests.some((r) => r.method === "PUT" && r.url.includes("/blobs/")));
    assert.equal(JSON.parse(await skopeoRaw(`${registry.host}/team/mounted:1`)).schemaVersion, 2);
  });

  it("uses the upload a refused mount opened (202) instead of starting another", async () => {
    const counter = await proxy();
    const { data, descriptor } = randomBlob(100_000);
    const dst = await destination(`${counter.host}/team/refused:1`);
    assert.equal(await dst.mountBlob?.(descriptor, { registry: counter.host, repository: "nowhere/empty" }), false);
    await dst.putBlob(descriptor, Readable.from([data]));
    await dst.commit();
    const posts = counter.requests.filter((r) => r.method === "POST");
    assert.equal(posts.length, 1);
    assert.equal(posts[0]?.status, 202);
    assert.equal(await dst.hasBlob(descriptor), true);
    const src = await source(`${counter.host}/team/refused:1`);
    assert.deepEqual(await drain(await src.getBlob(descriptor)), { digest: descriptor.digest, size: descriptor.size });
  });

  it("sends the next blob through an upload opened ahead, and cancels one left unused", async () => {
    const counter = await proxy();
    const { data, descriptor } = randomBlob(50_000);
    const dst = await destination(`${counter.host}/team/ahead:1`);
    dst.openUpload?.();
    await new Promise((resolve) => setTimeout(resolve, 100)); // the session is open before the blob comes
    await dst.putBlob(descriptor, Readable.from([data]));
    assert.equal(counter.requests.filter((r) => r.method === "POST").length, 1, "the session opened ahead was used");
    assert.equal(await dst.hasBlob(descriptor), true);
    dst.openUpload?.();
    await dst.commit();
    const methods = counter.requests.filter((r) => r.url.includes("/blobs/uploads/")).map((r) => `${r.method} ${r.status}`);
    assert.equal(methods.filter((m) => m.startsWith("POST")).length, 2);
    assert.ok(
      methods.some((m) => /^DELETE 2\d\d$/.test(m)),
      `the unused session was cancelled: ${methods.join(", ")}`,
    );
  });

  it("streams a blob whose digest is known only at its end (POST, one PATCH, PUT ?digest=)", async () => {
    const counter = await proxy();
    const dst = await destination(`${counter.host}/team/streamed:1`);
    const hash = createHash("sha256");
    let size = 0;
    let resolveFinal!: (d: Descriptor) => void;
    const final = new Promise<Descriptor>((resolve) => {
      resolveFinal = resolve;
    });
    async function* produce() {
      for (let i = 0; i < 24; i++) {
        const chunk = randomBytes(128 * 1024);
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
        await new Promise((resolve) => setImmediate(resolve));
      }
      setImmediate(() => resolveFinal({ mediaType: "application/octet-stream", digest: `sha256:${hash.digest("hex")}`, size }));
    }
    await dst.putBlobStreaming?.("application/octet-stream", Readable.from(produce()), final);
    const descriptor = await final;
    assert.deepEqual(
      counter.requests.filter((r) => r.url !== "/v2/").map((r) => r.method),
      ["POST", "PATCH", "PUT"],
    );
    assert.equal(counter.requests.find((r) => r.method === "PATCH")?.bodyBytes, size);
    assert.ok(counter.requests.find((r) => r.method === "PUT")?.url.includes(`digest=${encodeURIComponent(descriptor.digest)}`));
    assert.equal(await dst.hasBlob(descriptor), true);

    // A final descriptor that does not match what was streamed is refused.
    const bad = await destination(`${counter.host}/team/streamed:2`);
    const bytes = randomBytes(5000);
    await assert.rejects(
      bad.putBlobStreaming?.(
        "application/octet-stream",
        Readable.from([bytes]),
        Promise.resolve({ mediaType: "x", digest: descriptor.digest, size: 4999 }),
      ) ?? Promise.reject(new Error("missing")),
      SizeMismatchError,
    );
    await assert.rejects(
      bad.putBlobStreaming?.(
        "application/octet-stream",
        Readable.from([bytes]),
        Promise.resolve({ mediaType: "x", digest: descriptor.digest, size: 5000 }),
      ) ?? Promise.reject(new Error("missing")),
      /digest/,
    );
  });

  it("refuses a blob whose stream is shorter or longer than its descriptor", async () => {
    const data = randomBytes(10_000);
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}` as Digest;
    const dst = await destination(`${registry.host}/team/short:1`);
    for (const size of [data.length + 1, data.length - 1]) {
      await assert.rejects(
        dst.putBlob({ mediaType: "application/octet-stream", digest, size }, Readable.from([data])),
        (error: unknown) => {
          assertOneLine(error);
          assert.match(String((error as Error).message), /not as long as its descriptor says|does not match its (size|digest)/);
          return true;
        },
      );
    }
    assert.equal(await dst.hasBlob({ mediaType: "application/octet-stream", digest, size: data.length }), false);
  });

  it("pushes an index: children by digest, the index under the tag", async () => {
    const layout = join(work, "multi");
    const indexDigest = writeMultiArchLayout(layout, "latest");
    const src = await openSource({ transport: "oci", path: layout, tag: "latest" });
    const counter = await proxy();
    const result = await copyImage(src, await destination(`${counter.host}/team/multi:1`), { all: true });
    assert.equal(result.digest, indexDigest);
    const raw = await skopeoRaw(`${registry.host}/team/multi:1`);
    const index = parseImageIndex(rawManifest(Buffer.from(raw)));
    for (const child of index.manifests) {
      assert.ok(counter.requests.some((r) => r.method === "PUT" && r.url.endsWith(`/manifests/${child.digest}`)));
      const childRaw = await skopeoRaw(`${registry.host}/team/multi@${child.digest}`);
      assert.equal(`sha256:${createHash("sha256").update(childRaw).digest("hex")}`, child.digest);
    }
    const tagPut = counter.requests.findIndex((r) => r.method === "PUT" && r.url.endsWith("/manifests/1"));
    assert.equal(counter.requests[tagPut]?.headers["content-type"], "application/vnd.oci.image.index.v1+json");
    assert.ok(tagPut === counter.requests.length - 1, "the index is pushed last");
    const summary = await validateImage(await source(`${registry.host}/team/multi:1`));
    assert.equal(summary.kind, "index");
  });

  it("pushes to a digest-only reference by digest", async () => {
    const dst = await destination(`${registry.host}/team/pinned@${baseDigest}`);
    await copyImage(await source(`${registry.host}/lib/base:latest`), dst);
    assert.equal((await (await source(`${registry.host}/team/pinned@${baseDigest}`)).getManifest()).digest, baseDigest);
  });

  it("streams a 256 MiB blob up and down with flat memory (never buffered)", async () => {
    const block = randomBytes(1 << 20);
    const blocks = 256;
    function* generate() {
      for (let i = 0; i < blocks; i++) {
        const chunk = Buffer.from(block);
        chunk.writeUInt32LE(i, 0);
        yield chunk;
      }
    }
    const hash = createHash("sha256");
    for (const chunk of generate()) hash.update(chunk);
    const descriptor: Descriptor = { mediaType: "application/octet-stream", digest: `sha256:${hash.digest("hex")}`, size: blocks << 20 };
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    try {
      const dst = await destination(`${registry.host}/big/blob:1`);
      await dst.putBlob(descriptor, Readable.from(generate()));
      const src = await source(`${registry.host}/big/blob:1`);
      // A slow reader: the download must wait for it, not pile up in memory.
      let size = 0;
      await pipeline(
        await src.getBlob(descriptor),
        new Writable({
          highWaterMark: 1 << 20,
          write(chunk: Buffer, _e, cb) {
            size += chunk.length;
            setImmediate(cb);
          },
        }),
      );
      assert.equal(size, descriptor.size);
    } finally {
      clearInterval(sampler);
    }
    const grownMiB = (peak - baseline) / (1 << 20);
    assert.ok(grownMiB < 128, `RSS grew by ${grownMiB.toFixed(0)} MiB while moving 256 MiB`);
  });

  it("reports an unknown tag as ManifestUnknownError on one line", async () => {
    const src = await source(`${registry.host}/lib/base:lates`);
    await assert.rejects(src.getManifest(), (error: unknown) => {
      assert.ok(error instanceof ManifestUnknownError);
      assert.equal(error.userMessage, `${registry.host}/lib/base:lates: manifest unknown (check the tag exists)`);
      return true;
    });
    const missingRepo = await source(`${registry.host}/no/such:1`);
    await assert.rejects(missingRepo.getManifest(), /manifest unknown|repository name not known/);
  });

  it("reports an unreachable registry on one line naming the host", async () => {
    const port = await freePort();
    const src = await source(`127.0.0.1:${port}/team/app:1`);
    await assert.rejects(src.getManifest(), (error: unknown) => {
      assert.ok(error instanceof RegistryUnreachableError);
      assertOneLine(error);
      assert.match(error.userMessage, new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}: connection refused \\(check`));
      return true;
    });
  });

  it("detects a blob corrupted in transit (DigestMismatchError)", async () => {
    const corrupting = await proxy({
      transformBody(request, chunk, index) {
        if (request.method !== "GET" || !/\/blobs\/sha256:/.test(request.url) || index !== 0) return chunk;
        const copy = Buffer.from(chunk);
        copy[copy.length >> 1] = (copy[copy.length >> 1] as number) ^ 0xff;
        return copy;
      },
    });
    const src = await source(`${corrupting.host}/lib/base:latest`);
    const manifest = parseImageManifest(await src.getManifest());
    for (const blob of [manifest.config, ...manifest.layers]) {
      await assert.rejects(drain(await src.getBlob(blob)), DigestMismatchError);
    }
    const untouched = await source(`${registry.host}/lib/base:latest`);
    await drain(await untouched.getBlob(manifest.config));
  });

  it("detects a manifest corrupted in transit when fetched by digest", async () => {
    const corrupting = await proxy({
      transformBody(request, chunk, index) {
        if (!request.url.includes("/manifests/") || index !== 0) return chunk;
        return Buffer.from(chunk.toString("latin1").replace('"schemaVersion":2', '"schemaVersion":2 '), "latin1");
      },
    });
    await assert.rejects((await source(`${corrupting.host}/lib/base@${baseDigest}`)).getManifest(), DigestMismatchError);
  });

  it("never shows a redirect's signed query in an error", async () => {
    const deadPort = await freePort();
    const storage = createServer((_req, res) => {
      res.writeHead(403, { "content-type": "application/xml" }).end("<Error><Code>SignatureDoesNotMatch</Code></Error>");
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    const storagePort = (storage.address() as AddressInfo).port;
    try {
      for (const port of [deadPort, storagePort]) {
        const redirecting = await proxy({
          intercept(req, res) {
            const match = /^\/v2\/lib\/base\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? "");
            if (req.method !== "GET" || !match) return false;
            res.writeHead(307, {
              location: `http://127.0.0.1:${port}/storage/${match[1]}?X-Amz-Signature=topsecret&X-Amz-Credential=AKIA`,
            });
            res.end();
            return true;
          },
        });
        const src = await source(`${redirecting.host}/lib/base:latest`);
        const layer = parseImageManifest(await src.getManifest()).layers[0] as Descriptor;
        await assert.rejects(
          src.getBlob(layer).then((stream) => drain(stream)),
          (error: Error & { userMessage?: string }) => {
            const text = `${error.message} ${error.userMessage ?? ""} ${String((error as { hint?: string }).hint)}`;
            assert.doesNotMatch(text, /topsecret|AKIA/);
            assert.ok(!text.includes("\n"));
            assert.match(text, port === deadPort ? /cannot reach 127\.0\.0\.1:\d+ \(for/ : /storage at 127\.0\.0\.1:\d+ answered HTTP 403/);
            return true;
          },
        );
      }
    } finally {
      storage.closeAllConnections();
      await new Promise<void>((resolve) => storage.close(() => resolve()));
    }
  });

  it("follows a blob redirect to another origin, signed query intact", async () => {
    // Storage on another port (another origin) serves the blob bytes it fetched from the registry.
    const storageRequests: { url: string; authorization: string | undefined }[] = [];
    const storage = createServer((req, res) => {
      storageRequests.push({ url: req.url ?? "", authorization: req.headers.authorization });
      const digest = /\/(sha256:[a-f0-9]{64})/.exec(req.url ?? "")?.[1];
      httpGet(`${registry.url}/v2/lib/base/blobs/${digest}`, (upstream) => {
        res.writeHead(upstream.statusCode ?? 500, { "content-length": upstream.headers["content-length"] ?? "" });
        upstream.pipe(res);
      }).end();
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    const storagePort = (storage.address() as AddressInfo).port;
    try {
      const redirecting = await proxy({
        intercept(req, res) {
          const match = /^\/v2\/lib\/base\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? "");
          if (req.method !== "GET" || !match) return false;
          res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/storage/${match[1]}?X-Amz-Signature=secret` });
          res.end();
          return true;
        },
      });
      const src = await source(`${redirecting.host}/lib/base:latest`);
      const manifest = parseImageManifest(await src.getManifest());
      const layer = manifest.layers[0] as Descriptor;
      assert.deepEqual(await drain(await src.getBlob(layer)), { digest: layer.digest, size: layer.size });
      assert.equal(storageRequests.length, 1);
      assert.ok(storageRequests[0]?.url.includes("X-Amz-Signature"));
    } finally {
      storage.closeAllConnections();
      await new Promise<void>((resolve) => storage.close(() => resolve()));
    }
  });
});

describe("docker:// transport with htpasswd authentication", () => {
  let registry: TestRegistry;
  let work: string;
  const proxies: RegistryProxy[] = [];
  const username = "alice";
  const password = "s3cret, with: punctuation";
  let wrongHost: string;
  let anonymousHost: string;
  let redirectHost: string;
  const storageRequests: { url: string; authorization: string | undefined }[] = [];
  let storage: ReturnType<typeof createServer>;

  before(async () => {
    registry = await startRegistry({ htpasswd: { username, password } });
    work = mkdtempSync(join(tmpdir(), "ocify-registry-auth-"));
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 3 });
    await pushOciLayout(join(work, "base"), "latest", `${registry.host}/secure/base:latest`, { creds: `${username}:${password}` });

    storage = createServer((req, res) => {
      storageRequests.push({ url: req.url ?? "", authorization: req.headers.authorization });
      const digest = /\/(sha256:[a-f0-9]{64})/.exec(req.url ?? "")?.[1];
      const basic = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
      httpGet(`${registry.url}/v2/secure/base/blobs/${digest}`, { headers: { authorization: basic } }, (upstream) => {
        res.writeHead(upstream.statusCode ?? 500, { "content-length": upstream.headers["content-length"] ?? "" });
        upstream.pipe(res);
      }).end();
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    const storagePort = (storage.address() as AddressInfo).port;

    const wrong = await startRegistryProxy(registry.host);
    const anonymous = await startRegistryProxy(registry.host);
    const redirect = await startRegistryProxy(registry.host, {
      intercept(req, res) {
        const match = /^\/v2\/secure\/base\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? "");
        if (req.method !== "GET" || !match) return false;
        res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/storage/${match[1]}?sig=secret` });
        res.end();
        return true;
      },
    });
    proxies.push(wrong, anonymous, redirect);
    wrongHost = wrong.host;
    anonymousHost = anonymous.host;
    redirectHost = redirect.host;

    // Credentials as docker login writes them, in a temp DOCKER_CONFIG: base64 `auth`, username/password, a scheme+path key.
    const dockerConfig = join(work, "docker");
    mkdirSync(dockerConfig);
    writeFileSync(
      join(dockerConfig, "config.json"),
      JSON.stringify({
        auths: {
          [registry.host]: { auth: Buffer.from(`${username}:${password}`).toString("base64") },
          [wrongHost]: { username, password: "wrong" },
          [`http://${redirectHost}/v2/`]: { auth: Buffer.from(`${username}:${password}`).toString("base64") },
        },
      }),
    );
    process.env.DOCKER_CONFIG = dockerConfig;
  });

  after(async () => {
    delete process.env.DOCKER_CONFIG;
    for (const proxy of proxies) await proxy.stop();
    storage?.closeAllConnections();
    await new Promise<void>((resolve) => (storage ? storage.close(() => resolve()) : resolve()));
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("pulls and pushes with the credentials from DOCKER_CONFIG (Basic)", async () => {
    const src = await source(`${registry.host}/secure/base:latest`);
    const summary = await validateImage(src);
    await copyImage(src, await destination(`${registry.host}/secure/copy:1`));
    const raw = await skopeoRaw(`${registry.host}/secure/copy:1`, `${username}:${password}`);
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, summary.manifestDigest);
  });

  it("reports wrong credentials as one-line authentication failure naming the host", async () => {
    const src = await source(`${wrongHost}/secure/base:latest`);
    await assert.rejects(src.getManifest(), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assertOneLine(error);
      assert.match(
        error.userMessage,
        new RegExp(
          `^authentication failed for ${wrongHost} \\(check the user name and password in .*config\\.json, or log in again with ocify login`,
        ),
      );
      return true;
    });
  });

  it("reports missing credentials as authentication required", async () => {
    const src = await source(`${anonymousHost}/secure/base:latest`);
    await assert.rejects(src.getManifest(), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.match(error.userMessage, /authentication required \(log in with ocify login/);
      return true;
    });
  });

  it("does not send Authorization to another origin after a redirect", async () => {
    const src = await source(`${redirectHost}/secure/base:latest`);
    const manifest = parseImageManifest(await src.getManifest());
    const layer = manifest.layers[0] as Descriptor;
    assert.deepEqual(await drain(await src.getBlob(layer)), { digest: layer.digest, size: layer.size });
    const proxied = proxies[2]?.requests.find((r) => r.method === "GET" && r.url.includes(`/blobs/${layer.digest}`));
    assert.match(String(proxied?.headers.authorization), /^Basic /, "the registry's origin gets the credentials");
    assert.equal(storageRequests.length, 1);
    assert.equal(storageRequests[0]?.authorization, undefined, "storage on another origin does not");
  });
});
