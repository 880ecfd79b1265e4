/** `ocify copy`, `ocify inspect` and multi-platform builds through the real CLI against a real registry. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout, writeMultiArchLayout } from "../test-support/base-image.js";
import { run, runOcify, runOk } from "../test-support/cli.js";
import { pushOciLayout, startRegistry } from "../test-support/registry.js";

type Registry = Awaited<ReturnType<typeof startRegistry>>;

const sha256 = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

describe("ocify copy and inspect", () => {
  let registry: Registry;
  let work: string;
  let host: string;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "0" });
  const skopeoDigest = async (ref: string) => sha256(await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", ref]));

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-copy-test-"));
    registry = await startRegistry();
    host = registry.host;
    writeBaseImageLayout(join(work, "single"), "latest");
    await pushOciLayout(join(work, "single"), "latest", `${host}/src/single:latest`);
    writeMultiArchLayout(join(work, "multi"), "latest");
    await runOk("skopeo", [
      "copy",
      "--all",
      "--dest-tls-verify=false",
      `oci:${join(work, "multi")}:latest`,
      `docker://${host}/src/multi:latest`,
    ]);
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("keeps the manifest digest registry → OCI layout → registry", async () => {
    const original = await skopeoDigest(`docker://${host}/src/single:latest`);
    const layout = join(work, "layout");
    const toLayout = await runOcify(["copy", `${host}/src/single:latest`, `oci:${layout}:v1`], { env: env() });
    assert.equal(toLayout.code, 0, toLayout.stderr);
    assert.equal(toLayout.stdout.split(" ")[0], original);
    const back = await runOcify(["copy", `oci:${layout}:v1`, `docker://${host}/dst/single:v1`], { env: env() });
    assert.equal(back.code, 0, back.stderr);
    assert.equal(await skopeoDigest(`docker://${host}/dst/single:v1`), original);
    // umoci unpacks the layout we wrote.
    await runOk("umoci", ["unpack", "--rootless", "--image", `${layout}:v1`, join(work, "bundle")]);
    assert.match(readFileSync(join(work, "bundle", "rootfs", "etc", "os-release"), "utf8"), /ocify-test-base/);
  });

  it("copies a whole index with --all, keeping its digest, and one platform with --platform", async () => {
    const original = await skopeoDigest(`docker://${host}/src/multi:latest`);
    const all = await runOcify(["copy", "--all", `${host}/src/multi:latest`, `${host}/dst/multi:all`], { env: env() });
    assert.equal(all.code, 0, all.stderr);
    assert.equal(await skopeoDigest(`docker://${host}/dst/multi:all`), original);
    const arm = await runOcify(["copy", "--platform", "linux/arm64", `${host}/src/multi:latest`, `${host}/dst/multi:arm64`], {
      env: env(),
    });
    assert.equal(arm.code, 0, arm.stderr);
    const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", "--tls-verify=false", `docker://${host}/dst/multi:arm64`]));
    assert.equal(config.architecture, "arm64");
    const missing = await runOcify(["copy", "--platform", "linux/s390x", `${host}/src/multi:latest`, `${host}/dst/multi:s390x`], {
      env: env(),
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no image for linux\/s390x.*available: linux\/amd64, linux\/arm64\/v8/);
  });

  it("inspects: summary, --raw bytes as stored, --config, --json", async () => {
    const ref = `${host}/src/single:latest`;
    const raw = await runOcify(["inspect", "--raw", ref], { env: env() });
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(raw.stdout, await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]));
    const config = await runOcify(["inspect", "--config", ref], { env: env() });
    assert.deepEqual(
      JSON.parse(config.stdout),
      JSON.parse(await runOk("skopeo", ["inspect", "--config", "--tls-verify=false", `docker://${ref}`])),
    );
    const json = JSON.parse((await runOcify(["inspect", "--json", ref], { env: env() })).stdout);
    assert.equal(json.digest, sha256(raw.stdout));
    assert.equal(json.layers.length, 1);
    assert.match(json.layers[0].diffID, /^sha256:/);
    const summary = await runOcify(["inspect", `${host}/src/multi:latest`], { env: env() });
    assert.match(summary.stdout, /linux\/amd64/);
    assert.match(summary.stdout, /linux\/arm64\/v8/);
  });

  it("builds a multi-platform index with per-platform layers", async () => {
    const common = join(work, "common");
    const armOnly = join(work, "arm-only");
    mkdirSync(common);
    mkdirSync(armOnly);
    writeFileSync(join(common, "app.txt"), "common\n");
    writeFileSync(join(armOnly, "arm.txt"), "arm only\n");
    const digestFile = join(work, "digest.txt");
    const result = await runOcify(
      [
        "build",
        "--from",
        `${host}/src/multi:latest`,
        "--platform",
        "linux/amd64,linux/arm64",
        "--layer",
        `${common}:/app`,
        "--layer-for",
        `linux/arm64=${armOnly}:/arm`,
        "-t",
        `${host}/dst/built:1`,
        "--digest-file",
        digestFile,
      ],
      { env: env() },
    );
    assert.equal(result.code, 0, result.stderr);
    const index = JSON.parse(await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/dst/built:1`]));
    assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(
      index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ["amd64", "arm64"],
    );
    assert.equal(readFileSync(digestFile, "utf8").trim(), result.stdout.split(" ")[0]);
    const amd = JSON.parse(
      await runOk("skopeo", ["inspect", "--config", "--tls-verify=false", "--override-arch", "amd64", `docker://${host}/dst/built:1`]),
    );
    const arm = JSON.parse(
      await runOk("skopeo", ["inspect", "--config", "--tls-verify=false", "--override-arch", "arm64", `docker://${host}/dst/built:1`]),
    );
    assert.equal(amd.architecture, "amd64");
    assert.equal(arm.architecture, "arm64");
    assert.equal(amd.rootfs.diff_ids.length, 2);
    assert.equal(arm.rootfs.diff_ids.length, 3);
    assert.equal(arm.rootfs.diff_ids[1], amd.rootfs.diff_ids[1], "the common layer is the same layer");

    const absent = await runOcify(
      [
        "build",
        "--from",
        `${host}/src/multi:latest`,
        "--platform",
        "linux/amd64,linux/riscv64",
        "--layer",
        `${common}:/app`,
        "-t",
        `${host}/dst/absent:1`,
      ],
      { env: env() },
    );
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /no image for linux\/riscv64/);
    const pushed = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/dst/absent:1`]);
    assert.notEqual(pushed.code, 0, "nothing was pushed");
  });
});
