/**
 * Pulls through mirrors and within pull limits, through the CLI: a mirror registry that holds the base and
 * an origin that does not (--registry-mirror, registries.conf with a namespace), a miss or a dead mirror
 * falling back to the origin, a tag resolved with HEAD and a cached manifest not fetched again, and a 429
 * that says when to retry.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseReference } from "../reference.js";
import { pullEndpoints } from "../registry/mirrors.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { runOcify, runOk } from "../test-support/cli.js";
import {
  freePort,
  pushOciLayout,
  type RegistryProxy,
  startRegistry,
  startRegistryProxy,
  type TestRegistry,
} from "../test-support/registry.js";

describe("mirrors and pull limits", () => {
  let origin: TestRegistry;
  let mirror: TestRegistry;
  let front: RegistryProxy;
  let work: string;
  let files: string;

  before(async () => {
    [origin, mirror] = await Promise.all([startRegistry(), startRegistry()]);
    front = await startRegistryProxy(mirror.host);
    work = mkdtempSync(join(tmpdir(), "ocify-mirrors-"));
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 31 });
    await pushOciLayout(join(work, "base"), "latest", `${mirror.host}/lib/base:latest`);
    await pushOciLayout(join(work, "base"), "latest", `${mirror.host}/mirrored/lib/base:latest`);
    await pushOciLayout(join(work, "base"), "latest", `${origin.host}/lib/only-here:latest`);
    files = join(work, "files");
    mkdirSync(files);
    writeFileSync(join(files, "a.txt"), "mirrored\n");
  });
  after(async () => {
    await front?.stop();
    await Promise.all([origin?.stop(), mirror?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    OCIFY_CACHE_DIR: join(work, "cache"),
    OCIFY_CONFIG: join(work, "none.json"),
    CONTAINERS_REGISTRIES_CONF: join(work, "none.conf"),
    OCIFY_DOCKER_DAEMON_JSON: join(work, "none-daemon.json"),
    ...extra,
  });
  const build = (from: string, tag: string, extra: string[], environment: NodeJS.ProcessEnv) =>
    runOcify(["build", "-q", "--from", from, "--layer", `${files}:/`, ...extra, "-t", `${origin.host}/team/app:${tag}`], {
      env: environment,
    });

  it("builds on a base that only the mirror holds (--registry-mirror REGISTRY=MIRROR)", async () => {
    const result = await build(`${origin.host}/lib/base:latest`, "1", ["--registry-mirror", `${origin.host}=${front.host}`], env());
    assert.equal(result.code, 0, result.stderr);
    assert.ok(front.requests.some((r) => r.url.startsWith("/v2/lib/base/manifests/")));
    const pushed = JSON.parse(await runOk("skopeo", ["inspect", "--tls-verify=false", `docker://${origin.host}/team/app:1`]));
    assert.equal(pushed.Layers.length, 2, "the base's layer and the new one");
    const without = await build(`${origin.host}/lib/base:latest`, "2", [], env());
    assert.equal(without.code, 1, "the origin alone does not have it");
    assert.match(without.stderr, /manifest unknown/);
  });

  it("reads registries.conf mirror entries, with a namespace in the mirror's location", async () => {
    const conf = join(work, "registries.conf");
    writeFileSync(
      conf,
      [
        'unqualified-search-registries = ["docker.io",',
        '  "quay.io"]',
        "[[registry]]",
        `prefix = "${origin.host}/lib"`,
        `location = "${origin.host}/lib"`,
        "[[registry.mirror]]",
        `location = "${mirror.host}/mirrored/lib" # a namespace on the mirror`,
        "insecure = true",
      ].join("\n"),
    );
    const out = join(work, "from-conf");
    const result = await runOcify(["copy", "-q", `${origin.host}/lib/base:latest`, `oci:${out}:v1`], {
      env: env({ CONTAINERS_REGISTRIES_CONF: conf }),
    });
    assert.equal(result.code, 0, result.stderr);
    await runOk("skopeo", ["inspect", `oci:${out}:v1`]);
  });

  it("falls back to the origin on a miss, and when the mirror is down", async () => {
    const missed = await runOcify(
      [
        "copy",
        "-q",
        "--registry-mirror",
        `${origin.host}=${front.host}`,
        `${origin.host}/lib/only-here:latest`,
        `oci:${join(work, "miss")}:v1`,
      ],
      { env: env() },
    );
    assert.equal(missed.code, 0, missed.stderr);
    const dead = `127.0.0.1:${await freePort()}`;
    const down = await runOcify(
      ["copy", "-q", "--registry-mirror", `${origin.host}=${dead}`, `${origin.host}/lib/only-here:latest`, `oci:${join(work, "down")}:v1`],
      { env: env() },
    );
    assert.equal(down.code, 0, down.stderr);
  });

  it("resolves a tag with HEAD and reads a manifest the cache holds instead of fetching it again", async () => {
    const cache = join(work, "limits-cache");
    const mirrorFlag = ["--registry-mirror", `${origin.host}=${front.host}`];
    const first = await build(`${origin.host}/lib/base:latest`, "3", mirrorFlag, env({ OCIFY_CACHE_DIR: cache }));
    assert.equal(first.code, 0, first.stderr);
    const before = front.requests.length;
    const second = await build(`${origin.host}/lib/base:latest`, "4", mirrorFlag, env({ OCIFY_CACHE_DIR: cache }));
    assert.equal(second.code, 0, second.stderr);
    const manifests = front.requests.slice(before).filter((r) => r.url.includes("/manifests/"));
    assert.deepEqual(
      manifests.map((r) => r.method),
      ["HEAD"],
      "a HEAD (not a pull on Docker Hub), and no GET",
    );
  });

  it("says when a rate limit resets, in one line", async () => {
    const limited = await startRegistryProxy(origin.host, {
      intercept(req, res) {
        if (!req.url?.includes("/manifests/")) return false;
        const body = JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "You have reached your pull rate limit." }] });
        res.writeHead(429, { "content-type": "application/json", "ratelimit-reset": "3600", "ratelimit-remaining": "0;w=21600" }).end(body);
        return true;
      },
    });
    try {
      const result = await runOcify(["digest", `${limited.host}/lib/only-here:latest`], { env: env() });
      assert.equal(result.code, 1);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.match(
        result.stderr,
        /too many requests \(the registry limits your requests; retry after \d\d:\d\d:\d\d UTC \(in 3600 s\), or log in with ocify login/,
      );
    } finally {
      await limited.stop();
    }
  });
});

describe("mirror settings", () => {
  it("orders flag, ocify config, registries.conf and daemon.json mirrors before the registry", () => {
    const dir = mkdtempSync(join(tmpdir(), "ocify-mirror-conf-"));
    try {
      writeFileSync(join(dir, "ocify.json"), JSON.stringify({ registries: { "docker.io": { mirrors: ["cfg.example.com"] } } }));
      writeFileSync(
        join(dir, "registries.conf"),
        '[[registry]]\nprefix = "docker.io/library"\nlocation = "docker.io/library"\n[[registry.mirror]]\nlocation = "conf.example.com/hub"\n' +
          '[[registry.mirror]]\nlocation = "digests.example.com"\npull-from-mirror = "digest-only"\n',
      );
      writeFileSync(join(dir, "daemon.json"), JSON.stringify({ "registry-mirrors": ["http://daemon.example.com"] }));
      const environment = {
        OCIFY_CONFIG: join(dir, "ocify.json"),
        CONTAINERS_REGISTRIES_CONF: join(dir, "registries.conf"),
        OCIFY_DOCKER_DAEMON_JSON: join(dir, "daemon.json"),
      };
      const endpoints = pullEndpoints(parseReference("alpine:3"), ["flag.example.com", "other.example.com=x.example.com"], environment);
      assert.deepEqual(endpoints, [
        { registry: "flag.example.com", repository: "library/alpine", insecure: false },
        { registry: "cfg.example.com", repository: "library/alpine", insecure: false },
        { registry: "conf.example.com", repository: "hub/alpine", insecure: false },
        { registry: "daemon.example.com", repository: "library/alpine", insecure: true },
        { registry: "docker.io", repository: "library/alpine", insecure: false },
      ]);
      const byDigest = pullEndpoints(parseReference(`alpine@sha256:${"a".repeat(64)}`), [], environment);
      assert.ok(
        byDigest.some((e) => e.registry === "digests.example.com"),
        "digest-only mirrors serve digest references",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
