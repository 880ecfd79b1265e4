/**
 * Docker schema 1 images in a real registry (Debian's docker-registry with schema 1 enabled, which stores
 * the payload and signs it again with a key of its own on every GET): copied, built on and inspected as
 * the schema 2 images skopeo converts them to, signed and unsigned; changed ones refused.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { pushRawBlob, pushRawManifest } from "../test-support/raw-images.js";
import { type RegistryProxy, startRegistry, startRegistryProxy, type TestRegistry } from "../test-support/registry.js";
import { type Schema1Fixture, schema1Fixture, signSchema1 } from "../test-support/schema1.js";
import { validateImage } from "../validate.js";
import { openSource, parseTransportReference } from "./transport.js";

const signedType = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const skopeo = (args: string[]) => runOk("skopeo", [...args.slice(0, 1), "--tls-verify=false", ...args.slice(1)]);

describe("Docker schema 1 images", () => {
  let registry: TestRegistry;
  let host: string;
  let work: string;
  let fixture: Schema1Fixture;
  const proxies: RegistryProxy[] = [];
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "0" });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-schema1-test-"));
    registry = await startRegistry({ schema1: true });
    host = registry.host;
    fixture = schema1Fixture("s1/img", "1");
    for (const layer of fixture.layers) await pushRawBlob(registry.url, "s1/img", layer.blob);
    await pushRawManifest(registry.url, "s1/img", "1", {
      bytes: signSchema1(fixture.payload),
      mediaType: signedType,
      digest: fixture.digest,
    });
    // skopeo's own conversion, the reference ocify must agree with.
    await runOk("skopeo", [
      "copy",
      "--quiet",
      "--insecure-policy",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      "--format",
      "v2s2",
      `docker://${host}/s1/img:1`,
      `docker://${host}/s1/skopeo:1`,
    ]);
  });
  after(async () => {
    for (const proxy of proxies) await proxy.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** A proxy whose manifest GETs are answered by `answer` (given the registry's own answer). */
  /** A front whose manifest GETs (and HEADs, with `head`) `answer` decides, from the registry's own answer. */
  async function manifestProxy(answer: (upstream: Response, res: ServerResponse) => Promise<void>, head = false): Promise<string> {
    const proxy = await startRegistryProxy(host, {
      intercept(req: IncomingMessage, res: ServerResponse) {
        if (!(req.method === "GET" || (head && req.method === "HEAD")) || !req.url?.includes("/manifests/")) return false;
        void fetch(`${registry.url}${req.url}`, { method: req.method, headers: { accept: String(req.headers.accept ?? "") } })
          .then((upstream) => answer(upstream, res))
          .catch(() => res.destroy());
        return true;
      },
    });
    proxies.push(proxy);
    return proxy.host;
  }

  it("serves the signed manifest signed anew on every GET, with the payload's digest", async () => {
    const get = () => fetch(`${registry.url}/v2/s1/img/manifests/1`, { headers: { accept: signedType } });
    const [first, second] = await Promise.all([get(), get()]);
    assert.equal(first.headers.get("docker-content-digest"), fixture.digest);
    assert.equal(first.headers.get("content-type"), signedType);
    assert.notEqual(await first.text(), await second.text(), "each GET carries a new signature");
  });

  it("copies a signed schema 1 image by tag and by digest to exactly what skopeo converts it to", async () => {
    const expected = (await skopeo(["inspect", `docker://${host}/s1/skopeo:1`])).trim();
    const byTag = await runOcify(["copy", `${host}/s1/img:1`, `${host}/s1/ocify:tag`], { env: env() });
    assert.equal(byTag.code, 0, byTag.stderr);
    const byDigest = await runOcify(["copy", `${host}/s1/img@${fixture.digest}`, `${host}/s1/ocify:digest`], { env: env() });
    assert.equal(byDigest.code, 0, byDigest.stderr);
    const skopeoDigest = JSON.parse(expected).Digest as string;
    assert.equal(byTag.stdout.split(" ")[0], skopeoDigest);
    assert.equal(byDigest.stdout.split(" ")[0], skopeoDigest);
    const ours = JSON.parse(await skopeo(["inspect", `docker://${host}/s1/ocify:tag`]));
    const theirs = JSON.parse(expected);
    for (const field of ["Digest", "Layers", "Env", "Labels", "Architecture", "Os", "Created"])
      assert.deepEqual(ours[field], theirs[field], field);
    // Throwaway entries are no layers; the two old-style empty layers stay, the same blob twice.
    assert.equal(ours.Layers.length, 4);
    assert.equal(ours.Layers[1], ours.Layers[2]);
  });

  it("copies to an OCI layout that skopeo and umoci read as skopeo's own conversion", async () => {
    const ours = join(work, "layout-ocify");
    const theirs = join(work, "layout-skopeo");
    const copied = await runOcify(["copy", `${host}/s1/img:1`, `oci:${ours}:1`], { env: env() });
    assert.equal(copied.code, 0, copied.stderr);
    await runOk("skopeo", [
      "copy",
      "--quiet",
      "--insecure-policy",
      "--src-tls-verify=false",
      `docker://${host}/s1/img:1`,
      `oci:${theirs}:1`,
    ]);
    const [a, b] = [JSON.parse(await skopeo(["inspect", `oci:${ours}:1`])), JSON.parse(await skopeo(["inspect", `oci:${theirs}:1`]))];
    for (const field of ["Layers", "Env", "Labels", "Architecture", "Os", "Created"]) assert.deepEqual(a[field], b[field], field);
    const source = await openSource(parseTransportReference(`oci:${ours}:1`));
    try {
      const summary = await validateImage(source); // every diffID recomputed from the layers
      assert.equal(summary.kind, "image");
    } finally {
      await source.close();
    }
    await runOk("umoci", ["unpack", "--rootless", "--image", `${ours}:1`, join(work, "bundle")]);
    assert.equal(readFileSync(join(work, "bundle", "rootfs", "run.txt"), "utf8"), "made by RUN\n");
    assert.equal(readFileSync(join(work, "bundle", "rootfs", "base.txt"), "utf8"), "the base\n");
  });

  it("builds on a schema 1 base, and a rebuild reads none of its layers again", async () => {
    const proxy = await startRegistryProxy(host);
    proxies.push(proxy);
    writeFileSync(join(work, "app.txt"), "app\n");
    const cache = join(work, "build-cache");
    const build = (...args: string[]) =>
      runOcify(["build", "--from", `${proxy.host}/s1/img:1`, "--layer", `${join(work, "app.txt")}:/app.txt`, ...args], {
        env: { ...env(), OCIFY_CACHE_DIR: cache },
      });
    const first = await build("--format", "oci", "-t", `oci:${join(work, "built")}:1`);
    assert.equal(first.code, 0, first.stderr);
    const layerGets = () => proxy.requests.filter((r) => r.method === "GET" && fixture.layers.some((l) => r.url.endsWith(l.digest)));
    assert.ok(layerGets().length > 0, "the first build reads the layers for their diffIDs");
    const seen = layerGets().length;
    const second = await build("-t", `${proxy.host}/s1/built:1`);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(layerGets().length, seen, "the second build reads no layer: mounts them, with their facts remembered");
    const skopeoConfig = JSON.parse(await skopeo(["inspect", "--config", `docker://${host}/s1/skopeo:1`]));
    const built = JSON.parse(await skopeo(["inspect", "--config", `docker://${host}/s1/built:1`]));
    assert.deepEqual(built.rootfs.diff_ids.slice(0, -1), skopeoConfig.rootfs.diff_ids);
    assert.equal(built.rootfs.diff_ids.length, 5);
    const manifest = JSON.parse(await skopeo(["inspect", "--raw", `oci:${join(work, "built")}:1`]));
    assert.equal(manifest.annotations["org.opencontainers.image.base.digest"], fixture.digest, "the base is named by its registry digest");
  });

  it("inspects the converted image, and --raw prints the signed manifest as served", async () => {
    const summary = await runOcify(["inspect", `${host}/s1/img:1`], { env: env() });
    assert.equal(summary.code, 0, summary.stderr);
    assert.match(summary.stdout, new RegExp(`Converted: +from ${signedType.replace(/[.+]/g, "\\$&")} ${fixture.digest}`));
    assert.match(summary.stdout, /Layers \(4,/);
    const raw = await runOcify(["inspect", "--raw", `${host}/s1/img:1`], { env: env() });
    assert.equal(raw.code, 0, raw.stderr);
    assert.ok(raw.stdout.startsWith(fixture.payload.toString("utf8").slice(0, 200)));
    assert.match(raw.stdout, /"signatures"/);
  });

  it("reads an unsigned schema 1 manifest (application/vnd.docker.distribution.manifest.v1+json)", async () => {
    const unsigned = await manifestProxy(async (_upstream, res) => {
      res.writeHead(200, {
        "content-type": "application/vnd.docker.distribution.manifest.v1+json",
        "docker-content-digest": fixture.digest,
      });
      res.end(fixture.payload);
    });
    const expected = JSON.parse(await skopeo(["inspect", `docker://${host}/s1/skopeo:1`])).Digest as string;
    const copied = await runOcify(["copy", `${unsigned}/s1/img:1`, `${host}/s1/unsigned:1`], { env: env() });
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stdout.split(" ")[0], expected);
    const dir = join(work, "unsigned-built");
    const built = await runOcify(["build", "--from", `${unsigned}/s1/img:1`, "-t", `oci:${dir}`], { env: env() });
    assert.equal(built.code, 0, built.stderr);
    assert.ok(existsSync(join(dir, "index.json")));
  });

  it("refuses a manifest changed after it was signed, with one line and nothing left behind", async () => {
    // Without the digest header on GET and HEAD alike, only the signature can tell the manifest was changed.
    const tampered = (keepDigest: boolean) =>
      manifestProxy(async (upstream, res) => {
        const text = (await upstream.text()).replace("ENV X=1", "ENV X=9");
        const headers: Record<string, string> = { "content-type": upstream.headers.get("content-type") ?? "" };
        if (keepDigest) headers["docker-content-digest"] = upstream.headers.get("docker-content-digest") ?? "";
        res.writeHead(200, headers);
        res.end(text);
      }, !keepDigest);
    for (const [keepDigest, message] of [
      [true, /digest mismatch: expected sha256:/],
      [false, /its signature does not match its content/],
    ] as const) {
      const proxy = await tampered(keepDigest);
      const dir = join(work, `tampered-${keepDigest}`);
      // An empty cache: one that holds the genuine manifest (by the digest a HEAD gives) never asks for the tampered one.
      const cache = join(work, `tampered-cache-${keepDigest}`);
      const result = await runOcify(["build", "-q", "--from", `${proxy}/s1/img:1`, "-t", `oci:${dir}`], {
        env: { ...env(), OCIFY_CACHE_DIR: cache },
      });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.ok(!existsSync(dir), "no directory is left behind");
    }
  });
});
