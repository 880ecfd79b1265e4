/**
 * A registry that takes no pushes (distribution's read-only mode, as a mirror or a registry in maintenance
 * runs) answers every write with HTTP 405: ocify says what that means and what to do, in one line.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { encodeJson, rawManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import { registryClient } from "../registry/client.js";
import { RegistryError } from "../registry/errors.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";

const readOnly = /refuses pushes \(HTTP 405\): it is read-only \(push to another registry, or ask its operator to allow pushes/;

describe("pushing to a read-only registry", () => {
  let work: string;
  let plain: TestRegistry;
  let mirror: TestRegistry;
  let app: string;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache") });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-read-only-test-"));
    [plain, mirror] = await Promise.all([startRegistry(), startRegistry({ readOnly: true })]);
    writeBaseImageLayout(join(work, "base"), "latest");
    await pushOciLayout(join(work, "base"), "latest", `${plain.host}/base:1`);
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "hello.txt"), "hello\n");
  });
  after(async () => {
    await Promise.all([plain?.stop(), mirror?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  it("build, import and copy say the registry is read-only and what to do, in one line", async () => {
    const runs: string[][] = [
      ["build", "--from", "scratch", "--layer", `${app}:/app`, "-t", `${mirror.host}/team/app:1`],
      // Again, with the layer in the cache: nothing is uploaded while it is built.
      ["build", "--from", "scratch", "--layer", `${app}:/app`, "-t", `${mirror.host}/team/app:1`],
      ["build", "--from", `${plain.host}/base:1`, "--layer", `${app}:/app`, "-t", `${mirror.host}/team/app:2`],
      ["import", app, "-t", `${mirror.host}/team/rootfs:1`],
      ["copy", `${plain.host}/base:1`, `${mirror.host}/team/base:1`],
    ];
    for (const args of runs) assertOneErrorLine(await runOcify(args, { env: env() }), readOnly, args.join(" "));
  });

  it("a manifest PUT refused with 405 is told the same way", async () => {
    const config = encodeJson({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
    const manifest = rawManifest(
      encodeJson({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: `sha256:${"0".repeat(64)}`, size: config.length },
        layers: [],
      }),
      MediaType.ociManifest,
    );
    const client = registryClient(mirror.host);
    await assert.rejects(
      client.putManifest("team/app", "1", manifest, ["repository:team/app:pull,push"], "team/app:1"),
      (error: unknown) => {
        assert.ok(error instanceof RegistryError, String(error));
        assert.equal(error.code, "READ_ONLY");
        assert.equal(error.status, 405);
        assert.match(error.userMessage, readOnly);
        return true;
      },
    );
  });
});
