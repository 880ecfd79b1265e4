/**
 * `--platform` is a request: a single-platform base that is not of that platform is refused in one line,
 * as an index without it is, instead of an image of another architecture built in silence. Without
 * `--platform` a single-platform base is taken as it is (an arm64 base on an amd64 build host), and from
 * scratch `--platform` sets the image's platform.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";

/** The config of the image tagged `tag` in an OCI layout. */
function layoutConfig(layout: string, tag: string): { architecture: string; os: string; variant?: string } {
  const blob = (digest: string) => readFileSync(join(layout, "blobs", "sha256", digest.slice("sha256:".length)), "utf8");
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(entry, `tag ${tag} in ${layout}`);
  return JSON.parse(blob(JSON.parse(blob(entry.digest)).config.digest));
}

describe("--platform with a single-platform base, and from scratch", () => {
  let work: string;
  let app: string;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "0" });
  const bases = {
    amd64: "",
    arm64: "", // the config names no variant: v8, the default
    arm64v8: "",
    armv6: "",
    arm: "", // no variant: v7, the default
  };

  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-platform-test-"));
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "hello.txt"), "hello\n");
    bases.amd64 = join(work, "amd64");
    writeBaseImageLayout(bases.amd64, "1", { architecture: "amd64" });
    bases.arm64 = join(work, "arm64");
    writeBaseImageLayout(bases.arm64, "1", { architecture: "arm64" });
    bases.arm64v8 = join(work, "arm64v8");
    writeBaseImageLayout(bases.arm64v8, "1", { architecture: "arm64", variant: "v8" });
    bases.armv6 = join(work, "armv6");
    writeBaseImageLayout(bases.armv6, "1", { architecture: "arm", variant: "v6" });
    bases.arm = join(work, "arm");
    writeBaseImageLayout(bases.arm, "1", { architecture: "arm" });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  let outputs = 0;
  const build = async (base: string, platform: string | undefined) => {
    const out = join(work, `out-${++outputs}`);
    const result = await runOcify(
      ["build", "--from", base, ...(platform ? ["--platform", platform] : []), "--layer", `${app}:/app`, "-t", `oci:${out}:x`],
      { env: env() },
    );
    return { result, out };
  };

  it("refuses a platform the base is not of, in one line, writing nothing", async () => {
    const cases: [string, string, RegExp][] = [
      [bases.amd64, "linux/arm64", /oci:.*amd64:1 has no image for linux\/arm64: it is a single-platform image for linux\/amd64/],
      [bases.arm64, "linux/amd64", /has no image for linux\/amd64: it is a single-platform image for linux\/arm64/],
      [bases.arm64, "linux/arm64/v9", /has no image for linux\/arm64\/v9/],
      [bases.armv6, "linux/arm/v7", /has no image for linux\/arm\/v7: it is a single-platform image for linux\/arm\/v6/],
      [bases.arm, "linux/arm/v6", /has no image for linux\/arm\/v6: it is a single-platform image for linux\/arm \(/],
      [bases.amd64, "windows/amd64", /has no image for windows\/amd64/],
      [bases.amd64, "linux/amd64,linux/arm64", /has no image for linux\/arm64/],
    ];
    for (const [base, platform, pattern] of cases) {
      const { result, out } = await build(`oci:${base}:1`, platform);
      assertOneErrorLine(result, pattern, `${base} --platform ${platform}`);
      assert.match(result.stderr, /\(build --platform .*, or use a base that has /, "says what to do");
      assert.ok(!existsSync(out), "no output");
    }
  });

  it("accepts the base's own platform, with or without the variant arm64 and arm use by default", async () => {
    const cases: [string, string, { architecture: string; variant?: string }][] = [
      [bases.amd64, "linux/amd64", { architecture: "amd64" }],
      [bases.arm64, "linux/arm64", { architecture: "arm64" }],
      [bases.arm64, "linux/arm64/v8", { architecture: "arm64" }],
      [bases.arm64, "linux/aarch64", { architecture: "arm64" }],
      [bases.arm64v8, "linux/arm64", { architecture: "arm64", variant: "v8" }],
      [bases.armv6, "linux/arm", { architecture: "arm", variant: "v6" }],
      [bases.armv6, "linux/arm/v6", { architecture: "arm", variant: "v6" }],
      [bases.arm, "linux/arm/v7", { architecture: "arm" }],
    ];
    for (const [base, platform, expected] of cases) {
      const { result, out } = await build(`oci:${base}:1`, platform);
      assert.equal(result.code, 0, `${base} --platform ${platform}: ${result.stderr}`);
      const config = layoutConfig(out, "x");
      assert.deepEqual({ architecture: config.architecture, variant: config.variant }, { variant: undefined, ...expected });
    }
  });

  it("takes a single-platform base of another architecture as it is when no platform is asked for", async () => {
    const { result, out } = await build(`oci:${bases.armv6}:1`, undefined);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(layoutConfig(out, "x").architecture, "arm");
  });

  it("gives an image from scratch the platform asked for", async () => {
    const cases: [string, { architecture: string; os: string; variant?: string }][] = [
      ["linux/arm64/v8", { os: "linux", architecture: "arm64", variant: "v8" }],
      ["linux/riscv64", { os: "linux", architecture: "riscv64" }],
      ["linux/arm/v7", { os: "linux", architecture: "arm", variant: "v7" }],
    ];
    for (const [platform, expected] of cases) {
      const { result, out } = await build("scratch", platform);
      assert.equal(result.code, 0, `${platform}: ${result.stderr}`);
      const config = layoutConfig(out, "x");
      assert.deepEqual({ os: config.os, architecture: config.architecture, variant: config.variant }, { variant: undefined, ...expected });
    }
  });
});
