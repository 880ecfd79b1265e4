/**
 * The same inputs give the same image: neither the directories the sources sit in, nor their file times,
 * nor the working directory, nor the order in which repeatable flags are given change a digest, and no
 * path of the build host ends up in the image. Checked with the real CLI, against Debian's docker-registry
 * and OCI layouts, and with skopeo reading what was pushed.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { lutimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "./build.js";
import type { ImageConfig } from "./image/config.js";
import type { ImageManifest, IndexManifest } from "./image/manifest.js";
import { gnuTar, writeBaseImageLayout } from "./test-support/base-image.js";
import { runOcify, runOk } from "./test-support/cli.js";
import { startRegistry, type TestRegistry } from "./test-support/registry.js";

/** Every path below `root` (root included), deepest first. */
function allPaths(root: string): string[] {
  return [
    ...readdirSync(root, { recursive: true })
      .map((name) => join(root, String(name)))
      .reverse(),
    root,
  ];
}

/** A small tree of sources (a directory, a single file, a tarball), every time set to `seconds`. */
async function writeSources(dir: string, names: { tree: string; file: string; tarball: string }, seconds: number): Promise<void> {
  const tree = join(dir, names.tree);
  mkdirSync(join(tree, "bin"), { recursive: true });
  mkdirSync(join(tree, "share", "deep"), { recursive: true });
  writeFileSync(join(tree, "bin", "server"), '#!/bin/sh\necho "$@"\n');
  chmodSync(join(tree, "bin", "server"), 0o755);
  writeFileSync(join(tree, "config.txt"), "port=8080\n");
  writeFileSync(join(tree, "share", "deep", "notes.txt"), "notes\n".repeat(500));
  symlinkSync("bin/server", join(tree, "server-link"));
  writeFileSync(join(dir, names.file), "welcome\n");
  const rootfs = mkdtempSync(join(tmpdir(), "ocify-repro-rootfs-"));
  try {
    mkdirSync(join(rootfs, "etc"));
    writeFileSync(join(rootfs, "etc", "hostname"), "repro\n");
    writeFileSync(join(dir, names.tarball), gnuTar(rootfs));
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  for (const path of [...allPaths(tree), join(dir, names.file), join(dir, names.tarball)]) {
    if (lstatSync(path).isSymbolicLink()) await lutimes(path, seconds, seconds);
    else utimesSync(path, seconds, seconds);
  }
}

/** The `DIGEST DESTINATION` lines `ocify build` prints, as a map. */
function digestsOf(stdout: string): Map<string, string> {
  return new Map(
    stdout
      .trim()
      .split("\n")
      .map((line) => {
        const [digest = "", destination = ""] = line.split(" ");
        return [destination, digest];
      }),
  );
}

/** The manifest, config and index.json text of the image tagged `tag` in an OCI layout. */
function layoutTexts(layout: string, tag: string): { index: string; manifest: string; config: string } {
  const blob = (digest: string) => readFileSync(join(layout, "blobs", "sha256", digest.slice("sha256:".length)), "utf8");
  const index = readFileSync(join(layout, "index.json"), "utf8");
  const entry = (JSON.parse(index) as IndexManifest).manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(entry, `${tag} in ${layout}`);
  const manifest = blob(entry.digest);
  return { index, manifest, config: blob((JSON.parse(manifest) as ImageManifest).config.digest) };
}

describe("reproducible builds", () => {
  let registry: TestRegistry;
  let work: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-repro-"));
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("gives the same digest whatever directories the sources sit in, their times and the working directory", async () => {
    // Two checkouts of the same sources: other directory names, other file times, another working directory.
    const a = join(work, "checkout-a");
    const b = join(work, "ci", "workspace-2");
    const bCwd = join(work, "ci", "elsewhere");
    mkdirSync(a, { recursive: true });
    mkdirSync(b, { recursive: true });
    mkdirSync(bCwd, { recursive: true });
    await writeSources(a, { tree: "src1", file: "motd-a.txt", tarball: "rootfs-a.tar" }, 1_500_000_000);
    await writeSources(b, { tree: "src2", file: "motd-b.txt", tarball: "rootfs-b.tar" }, 1_600_000_000);
    // The same base, read from a layout in each checkout.
    const baseDigest = writeBaseImageLayout(join(a, "base"), "latest");
    assert.equal(writeBaseImageLayout(join(b, "base-copy"), "latest"), baseDigest);

    const env = (name: string): NodeJS.ProcessEnv => ({
      SOURCE_DATE_EPOCH: "1000000000",
      OCIFY_CACHE_DIR: join(work, `cache-${name}`),
      DOCKER_CONFIG: join(work, "docker-config"),
    });
    const first = await runOcify(
      [
        "build",
        "--from",
        "oci:base:latest",
        "--layer",
        "./src1:/app",
        "--layer",
        "motd-a.txt:/etc/motd",
        "--layer",
        "rootfs-a.tar",
        "-t",
        "oci:layout-a:v1",
        "-t",
        `${registry.host}/repro/a:v1`,
      ],
      { cwd: a, env: env("a") },
    );
    assert.equal(first.code, 0, first.stderr);
    const second = await runOcify(
      [
        "build",
        "--from",
        `oci:${join(b, "base-copy")}:latest`,
        "--layer",
        `${join(b, "src2")}:/app`,
        "--layer",
        `${relative(bCwd, join(b, "motd-b.txt"))}:/etc/motd`,
        "--layer",
        `${relative(bCwd, join(b, "rootfs-b.tar"))}:/`,
        "-t",
        `oci:${join(b, "layout-b")}:v1`,
        "-t",
        `${registry.host}/repro/b:v1`,
      ],
      { cwd: bCwd, env: env("b") },
    );
    assert.equal(second.code, 0, second.stderr);

    const digests = [...digestsOf(first.stdout).values(), ...digestsOf(second.stdout).values()];
    assert.equal(digests.length, 4, `${first.stdout}${second.stdout}`);
    assert.equal(new Set(digests).size, 1, `one digest for every destination of both builds: ${digests.join(" ")}`);

    // What the registry holds, as skopeo reads it: the same bytes under both names.
    const raw = async (repo: string) => runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/${repo}:v1`]);
    const pushedConfig = async (repo: string) =>
      runOk("skopeo", ["inspect", "--config", "--raw", "--tls-verify=false", `docker://${registry.host}/${repo}:v1`]);
    assert.equal(await raw("repro/a"), await raw("repro/b"));
    assert.equal(await pushedConfig("repro/a"), await pushedConfig("repro/b"));

    // No name of the build host's directories anywhere in the images or their layouts' index.json.
    const texts = [
      ...Object.values(layoutTexts(join(a, "layout-a"), "v1")),
      ...Object.values(layoutTexts(join(b, "layout-b"), "v1")),
      await raw("repro/a"),
      await pushedConfig("repro/a"),
    ];
    for (const hostName of [work, "checkout-a", "workspace-2", "elsewhere", "src1", "src2", "motd-", "rootfs-", "base-copy", "layout-"]) {
      for (const text of texts) assert.ok(!text.includes(hostName), `"${hostName}" found in ${text}`);
    }
    // The history says what each layer is and where it goes.
    const config = JSON.parse(await pushedConfig("repro/a")) as ImageConfig;
    assert.deepEqual(
      config.history?.slice(-3).map((h) => h.created_by),
      ["ocify layer directory -> /app", "ocify layer file -> /etc/motd", "ocify layer tarball -> /"],
    );
    // The base is named by its digest alone: its name here would be a path.
    const manifest = JSON.parse(await raw("repro/a")) as ImageManifest;
    assert.deepEqual(manifest.annotations, { "org.opencontainers.image.base.digest": baseDigest });
  });

  it("gives one digest for any order of --label, --expose, --volume and --annotation", async () => {
    const tree = join(work, "order-tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "hello.txt"), "hello\n");
    const flags = {
      label: ["org.example.b=1", "org.example.a=2", "version=3", "10=ten", "9=nine"],
      expose: ["8080", "53/udp", "9000-9001", "443/tcp"],
      volume: ["/var/b", "/data", "/var/a"],
      annotation: ["org.example.y=2", "org.example.x=1", "org.opencontainers.image.title=t"],
    };
    type Flags = typeof flags;
    const orders: [string, (values: string[]) => string[]][] = [
      ["as given", (values) => values],
      ["reversed", (values) => [...values].reverse()],
      ["rotated", (values) => [...values.slice(1), ...values.slice(0, 1)]],
    ];
    const digests = new Set<string>();
    for (const [name, order] of orders) {
      const args = (Object.keys(flags) as (keyof Flags)[]).flatMap((flag) => order(flags[flag]).flatMap((value) => [`--${flag}`, value]));
      const result = await runOcify(
        [
          "build",
          "--from",
          "scratch",
          "--layer",
          `${tree}:/srv`,
          ...args,
          "-t",
          `${registry.host}/repro/order-${name.replace(" ", "-")}:1`,
        ],
        {
          env: { SOURCE_DATE_EPOCH: "1000000000", OCIFY_CACHE_DIR: join(work, "cache-order"), DOCKER_CONFIG: join(work, "docker-config") },
        },
      );
      assert.equal(result.code, 0, result.stderr);
      for (const digest of digestsOf(result.stdout).values()) digests.add(digest);
    }
    assert.equal(digests.size, 1, [...digests].join(" "));
    const config = JSON.parse(
      await runOk("skopeo", ["inspect", "--config", "--raw", "--tls-verify=false", `docker://${registry.host}/repro/order-reversed:1`]),
    ) as ImageConfig;
    assert.deepEqual(config.config?.Labels, { "org.example.b": "1", "org.example.a": "2", version: "3", "10": "ten", "9": "nine" });
    assert.deepEqual(Object.keys(config.config?.ExposedPorts ?? {}).sort(), ["443/tcp", "53/udp", "8080/tcp", "9000/tcp", "9001/tcp"]);
    assert.deepEqual(Object.keys(config.config?.Volumes ?? {}).sort(), ["/data", "/var/a", "/var/b"]);
  });

  it("gives one index for any order of labels, ports, volumes and annotations in a multi-platform build", async () => {
    const labels: [string, string][] = [
      ["z", "1"],
      ["a", "2"],
      ["m", "3"],
    ];
    const annotations: [string, string][] = [
      ["org.example.second", "2"],
      ["org.example.first", "1"],
    ];
    const ports = ["80", "53/udp", "8080/tcp"];
    const volumes = ["/b", "/a"];
    const digests = new Set<string>();
    for (const reverse of [false, true]) {
      const order = <T>(values: T[]): T[] => (reverse ? [...values].reverse() : values);
      const result = await build({
        from: "scratch",
        layers: [],
        platforms: [
          { os: "linux", architecture: "amd64" },
          { os: "linux", architecture: "arm64", variant: "v8" },
        ],
        config: { labels: Object.fromEntries(order(labels)), expose: order(ports), volumes: order(volumes) },
        annotations: Object.fromEntries(order(annotations)),
        tags: [`oci:${join(work, `index-${reverse}`)}:1`],
        cacheDir: join(work, "cache-index"),
        sourceDateEpoch: 1_000_000_000,
      });
      digests.add(result.digest);
      const index = JSON.parse(result.manifest.toString()) as IndexManifest;
      assert.deepEqual(index.annotations, Object.fromEntries(annotations));
    }
    assert.equal(digests.size, 1, [...digests].join(" "));
  });

  it("keeps the fields of a base config it does not know, and copies manifests byte for byte", async () => {
    const base = join(work, "legacy-base");
    const extraConfig = {
      container_config: { Hostname: "builder", Cmd: ["/bin/sh", "-c", "#(nop) ", 'CMD ["/bin/sh"]'], Labels: { z: "1", a: "2" } },
      container: "0123456789ab",
      docker_version: "20.10.24",
      "vendor.example/build-info": { source: { b: 2, a: 1 }, steps: [{ y: 1, x: 2 }] },
    };
    const baseDigest = writeBaseImageLayout(base, "latest", { format: "docker", extraConfig });
    const result = await build({
      from: `oci:${base}:latest`,
      layers: [],
      config: { labels: { team: "core" } },
      tags: [`oci:${join(work, "legacy-out")}:1`],
      cacheDir: join(work, "cache-legacy"),
      sourceDateEpoch: 1_000_000_000,
    });
    const config = JSON.parse((result.configs[0] as Buffer).toString()) as ImageConfig;
    for (const [field, value] of Object.entries(extraConfig)) assert.deepEqual(config[field], value, field);
    assert.deepEqual(config.config?.Labels, { team: "core" });

    // A copy is not a build: the base's manifest (its keys not sorted) keeps its bytes, so its digest.
    const copy = await runOcify(["copy", `oci:${base}:latest`, `${registry.host}/repro/legacy:1`], {
      env: { OCIFY_CACHE_DIR: join(work, "cache-copy"), DOCKER_CONFIG: join(work, "docker-config") },
    });
    assert.equal(copy.code, 0, copy.stderr);
    const pushed = await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/repro/legacy:1`]);
    assert.equal(pushed, readFileSync(join(base, "blobs", "sha256", baseDigest.slice("sha256:".length)), "utf8"));
    assert.ok(pushed.startsWith('{"schemaVersion":2,'), "the fixture's keys are not sorted");
  });
});
