/**
 * The Core story end to end: the real CLI builds on a base pushed with skopeo to Debian's docker-registry,
 * and real clients (skopeo, umoci) judge the result.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { runOcify, runOk } from "../test-support/cli.js";
import { pushOciLayout, startRegistry } from "../test-support/registry.js";

type Registry = Awaited<ReturnType<typeof startRegistry>>;

const epoch = "1700000000";

function makeArtifacts(root: string): void {
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "share/doc/deeply/nested"), { recursive: true });
  writeFileSync(join(root, "bin/server"), '#!/bin/sh\necho server "$@"\n');
  chmodSync(join(root, "bin/server"), 0o755);
  writeFileSync(join(root, "config.txt"), "port=8080\n");
  chmodSync(join(root, "config.txt"), 0o640);
  symlinkSync("bin/server", join(root, "server-link"));
  linkSync(join(root, "config.txt"), join(root, "config-hardlink.txt"));
  const longName = `${"n".repeat(120)}.txt`;
  writeFileSync(join(root, "share/doc/deeply/nested", longName), "long name\n");
  writeFileSync(join(root, "share/doc/héllo-wörld.txt"), "unicode\n");
}

describe("ocify build against a real registry", () => {
  let registry: Registry;
  let work: string;
  let artifacts: string;
  const env = (): NodeJS.ProcessEnv => ({
    SOURCE_DATE_EPOCH: epoch,
    OCIFY_CACHE_DIR: join(work, "cache"),
    DOCKER_CONFIG: join(work, "docker-config"),
  });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-build-test-"));
    artifacts = join(work, "out");
    makeArtifacts(artifacts);
    registry = await startRegistry();
    const layout = join(work, "base-layout");
    writeBaseImageLayout(layout, "latest");
    await pushOciLayout(layout, "latest", `${registry.host}/library/base:latest`);
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const buildArgs = (...tags: string[]) => [
    "build",
    "--from",
    `${registry.host}/library/base:latest`,
    "--layer",
    `${artifacts}:/app`,
    "--entrypoint",
    '["/app/bin/server"]',
    "--cmd",
    '["--port","8080"]',
    "--env",
    "MODE=prod",
    "--workdir",
    "/app",
    "--user",
    "1000:1000",
    "--expose",
    "8080/tcp",
    "--volume",
    "/data",
    "--label",
    "org.example.team=core",
    ...tags.flatMap((t) => ["-t", t]),
  ];

  it("pushes an image and writes a docker-archive that real clients accept", async () => {
    const archive = join(work, "app.tar");
    const result = await runOcify(buildArgs(`${registry.host}/team/app:1.0`, `docker-archive:${archive}:team/app:1.0`), { env: env() });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, 2, result.stdout);
    const digests = lines.map((l) => l.split(" ")[0]);
    assert.match(digests[0] ?? "", /^sha256:[a-f0-9]{64}$/);
    assert.equal(digests[0], digests[1]);

    const inspect = JSON.parse(await runOk("skopeo", ["inspect", "--tls-verify=false", `docker://${registry.host}/team/app:1.0`]));
    assert.equal(inspect.Digest, digests[0]);
    const config = JSON.parse(
      await runOk("skopeo", ["inspect", "--config", "--tls-verify=false", `docker://${registry.host}/team/app:1.0`]),
    );
    assert.deepEqual(config.config.Entrypoint, ["/app/bin/server"]);
    assert.deepEqual(config.config.Cmd, ["--port", "8080"]);
    assert.ok(config.config.Env.includes("MODE=prod"));
    assert.ok(
      config.config.Env.some((e: string) => e.startsWith("PATH=")),
      "the base's PATH is kept",
    );
    assert.equal(config.config.WorkingDir, "/app");
    assert.equal(config.config.User, "1000:1000");
    assert.deepEqual(config.config.ExposedPorts, { "8080/tcp": {} });
    assert.deepEqual(config.config.Volumes, { "/data": {} });
    assert.equal(config.config.Labels["org.example.team"], "core");
    assert.equal(config.created, "2023-11-14T22:13:20Z");
    assert.equal(config.rootfs.diff_ids.length, 2);

    // umoci unpacks what skopeo pulled from the registry: files, modes, links as built.
    await runOk("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/team/app:1.0`, `oci:${join(work, "pulled")}:app`]);
    const bundle = join(work, "bundle");
    await runOk("umoci", ["unpack", "--rootless", "--image", `${join(work, "pulled")}:app`, bundle]);
    const app = join(bundle, "rootfs", "app");
    assert.equal(readFileSync(join(app, "config.txt"), "utf8"), "port=8080\n");
    assert.equal(statSync(join(app, "bin/server")).mode & 0o777, 0o755);
    assert.equal(statSync(join(app, "config.txt")).mode & 0o777, 0o640);
    assert.equal(readlinkSync(join(app, "server-link")), "bin/server");
    assert.equal(statSync(join(app, "config-hardlink.txt")).ino, statSync(join(app, "config.txt")).ino, "hard link kept");
    assert.ok(readdirSync(join(app, "share/doc/deeply/nested"))[0]?.length === 124, "long name kept");
    assert.ok(existsSync(join(app, "share/doc/héllo-wörld.txt")), "non-ASCII name kept");
    assert.ok(existsSync(join(bundle, "rootfs", "etc/os-release")), "base layer present");
    const runtime = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    assert.deepEqual(runtime.process.args, ["/app/bin/server", "--port", "8080"]);
    assert.equal(runtime.process.cwd, "/app");

    // The docker-archive output is read by skopeo (as docker load's format) with the same config.
    const archived = JSON.parse(await runOk("skopeo", ["inspect", "--config", `docker-archive:${archive}`]));
    assert.deepEqual(archived.rootfs.diff_ids, config.rootfs.diff_ids);
    await runOk("skopeo", ["copy", `docker-archive:${archive}`, `oci:${join(work, "from-archive")}:x`]);
  });

  it("gives the same digest for the same inputs and SOURCE_DATE_EPOCH, with a fresh cache", async () => {
    const first = await runOcify(buildArgs(`${registry.host}/team/det:a`), { env: env() });
    const second = await runOcify(buildArgs(`${registry.host}/team/det:b`), { env: { ...env(), OCIFY_CACHE_DIR: join(work, "cache2") } });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(first.stdout.split(" ")[0], second.stdout.split(" ")[0]);
    const third = await runOcify(buildArgs(`${registry.host}/team/det:c`), { env: { ...env(), SOURCE_DATE_EPOCH: "1700000001" } });
    assert.notEqual(third.stdout.split(" ")[0], first.stdout.split(" ")[0], "the timestamp is part of the image");
  });

  it("mounts a layer it pushed before when the same layer goes to another repository", async () => {
    const cache = join(work, "cache-mount");
    const first = await runOcify(buildArgs(`${registry.host}/team/mount-a:1`), { env: { ...env(), OCIFY_CACHE_DIR: cache } });
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /^layer [0-9a-f]{12}: mounted/m, "the first push uploads the layer (while building it)");
    const second = await runOcify(buildArgs(`${registry.host}/team/mount-b:1`), { env: { ...env(), OCIFY_CACHE_DIR: cache } });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /^layer [0-9a-f]{12}: mounted/m, `mounted, not uploaded again:\n${second.stderr}`);
    assert.equal(second.stdout.split(" ")[0], first.stdout.split(" ")[0]);
    // What the registry serves from the second repository is whole.
    await runOk("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/team/mount-b:1`, `oci:${join(work, "mounted")}:x`]);
  });

  it("keeps Docker schema 2 for a Docker base and honours --format oci", async () => {
    const layout = join(work, "docker-base");
    writeBaseImageLayout(layout, "latest");
    // skopeo converts to Docker schema 2 on the way (an OCI layout cannot list Docker manifests for skopeo).
    await runOk("skopeo", [
      "copy",
      "--format",
      "v2s2",
      "--dest-tls-verify=false",
      `oci:${layout}:latest`,
      `docker://${registry.host}/library/dockerbase:latest`,
    ]);
    const built = await runOcify(
      ["build", "--from", `${registry.host}/library/dockerbase:latest`, "--layer", `${artifacts}:/app`, "-t", `${registry.host}/team/d:1`],
      { env: env() },
    );
    assert.equal(built.code, 0, built.stderr);
    const raw = JSON.parse(await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/team/d:1`]));
    assert.equal(raw.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    assert.ok(raw.layers.every((l: { mediaType: string }) => l.mediaType.startsWith("application/vnd.docker.image.rootfs")));
    const oci = await runOcify(
      ["build", "--from", `${registry.host}/library/dockerbase:latest`, "--format", "oci", "-t", `${registry.host}/team/d:oci`],
      { env: env() },
    );
    assert.equal(oci.code, 0, oci.stderr);
    const rawOci = JSON.parse(await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/team/d:oci`]));
    assert.equal(rawOci.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(rawOci.config.mediaType, "application/vnd.oci.image.config.v1+json");

    // The same Docker image written to an OCI layout and a registry: the layout gets an OCI manifest that
    // skopeo can list (it skips Docker manifests in index.json), with the very same config bytes.
    const ociLayout = join(work, "docker-to-oci");
    const both = await runOcify(
      [
        "build",
        "--from",
        `${registry.host}/library/dockerbase:latest`,
        "--layer",
        `${artifacts}:/app`,
        "-t",
        `${registry.host}/team/d:2`,
        "-t",
        `oci:${ociLayout}:v1`,
      ],
      { env: env() },
    );
    assert.equal(both.code, 0, both.stderr);
    const [registryLine, layoutLine] = both.stdout.trim().split("\n");
    assert.notEqual(registryLine?.split(" ")[0], layoutLine?.split(" ")[0], "each destination reports its own digest");
    const fromLayout = JSON.parse(await runOk("skopeo", ["inspect", "--raw", `oci:${ociLayout}:v1`]));
    assert.equal(fromLayout.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(
      await runOk("skopeo", ["inspect", "--config", "--raw", `oci:${ociLayout}:v1`]),
      await runOk("skopeo", ["inspect", "--config", "--raw", "--tls-verify=false", `docker://${registry.host}/team/d:2`]),
    );
    const copied = await runOcify(["copy", `${registry.host}/team/d:2`, `oci:${ociLayout}:copied`], { env: env() });
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stdout.split(" ")[0], layoutLine?.split(" ")[0], "copy converts exactly as build does");
  });

  it("fails with one line, a non-zero exit and no partial output", async () => {
    const archive = join(work, "never.tar");
    const cases: [string[], RegExp, number][] = [
      [
        ["build", "--from", "scratch", "--layer", join(work, "missing"), "-t", `docker-archive:${archive}`],
        /layer source .*missing does not exist/,
        1,
      ],
      [["build", "--from", "scratch", "-t", "Bad/Ref"], /invalid reference/, 1],
      [["build", "--from", `${registry.host}/library/base:nope`, "-t", `docker-archive:${archive}`], /manifest unknown/i, 1],
      [["build", "--from", "127.0.0.1:1/x:1", "-t", `docker-archive:${archive}`], /127\.0\.0\.1:1/, 1],
      [["build", "--layer", artifacts, "-t", `docker-archive:${archive}`], /--from is required/, 2],
      [["build", "--from", "scratch", "--expose", "http", "-t", `docker-archive:${archive}`], /--expose http: not a port/, 2],
      [["frobnicate"], /unknown command/, 2],
    ];
    for (const [args, pattern, code] of cases) {
      const result = await runOcify(args, { env: env() });
      assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      assert.equal(result.stderr.trim().split("\n").length, 1, `one line: ${result.stderr}`);
      assert.match(result.stderr, /^ocify: /);
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
      assert.ok(!existsSync(archive), "no partial archive");
      assert.deepEqual(
        readdirSync(work).filter((f) => f.includes("never")),
        [],
        "no temp files left",
      );
    }
  });

  it("builds a 1 GiB layer with peak RSS under 200 MiB", async () => {
    const big = join(work, "big");
    mkdirSync(big);
    // A generated file, never committed: 1 GiB of varied data (a seeded pattern that does not compress away).
    const block = Buffer.alloc(1 << 20);
    let x = 12345;
    for (let i = 0; i < block.length; i += 4) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      block.writeUInt32LE(x, i);
    }
    const { openSync, writeSync, closeSync } = await import("node:fs");
    const fd = openSync(join(big, "blob.bin"), "w");
    for (let i = 0; i < 1024; i++) {
      block.writeUInt32LE(i, 0);
      writeSync(fd, block);
    }
    closeSync(fd);
    try {
      const result = await runOcify(
        ["build", "--from", "scratch", "--layer", `${big}:/big`, "-t", `${registry.host}/team/big:1`, "--quiet"],
        { env: env(), timeoutMs: 600_000 },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.maxRssMiB > 0, "RSS measured");
      assert.ok(result.maxRssMiB < 200, `peak RSS ${result.maxRssMiB.toFixed(0)} MiB`);
      const inspect = JSON.parse(await runOk("skopeo", ["inspect", "--tls-verify=false", `docker://${registry.host}/team/big:1`]));
      assert.equal(inspect.Layers.length, 1);
    } finally {
      rmSync(big, { recursive: true, force: true });
    }
  });
});

describe("ocify build with registry authentication", () => {
  let registry: Registry;
  let work: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-auth-test-"));
    registry = await startRegistry({ htpasswd: { username: "alice", password: "s3cret-pass" } });
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const configWith = (name: string, password: string): string => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    const auth = Buffer.from(`alice:${password}`).toString("base64");
    writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth } } }));
    return dir;
  };

  it("pushes with the credentials of docker's config.json and never prints them", async () => {
    const files = join(work, "files");
    mkdirSync(files);
    writeFileSync(join(files, "a.txt"), "a\n");
    const result = await runOcify(["build", "--from", "scratch", "--layer", `${files}:/`, "-t", `${registry.host}/secure/app:1`], {
      env: { DOCKER_CONFIG: configWith("good", "s3cret-pass"), OCIFY_CACHE_DIR: join(work, "cache") },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout + result.stderr, /s3cret-pass|YWxpY2U6czNjcmV0LXBhc3M/);
    await runOk("skopeo", ["inspect", "--tls-verify=false", "--creds", "alice:s3cret-pass", `docker://${registry.host}/secure/app:1`]);
  });

  it("reports a wrong password in one line", async () => {
    const result = await runOcify(["build", "--from", "scratch", "-t", `${registry.host}/secure/app:2`], {
      env: { DOCKER_CONFIG: configWith("bad", "wrong"), OCIFY_CACHE_DIR: join(work, "cache") },
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^ocify: .*(auth|401|unauthorized)/i);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.doesNotMatch(result.stderr, /wrong/);
  });
});
