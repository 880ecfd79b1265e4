/**
 * What the CLI loads: code a command does not need is not loaded, since loading it costs start-up time
 * on every run (a small rebuild is mostly start-up).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ocifyBin } from "../test-support/cli.js";

describe("CLI start-up", () => {
  let dir: string;
  let hook: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ocify-startup-"));
    // A module hook that records every module the CLI loads (it runs on the loader's own thread).
    writeFileSync(
      join(dir, "record.mjs"),
      'import { appendFileSync } from "node:fs";\nexport async function load(url, context, next) { appendFileSync(process.env.OCIFY_TEST_LOADED, url + "\\n"); return next(url, context); }\n',
    );
    hook = join(dir, "hook.mjs");
    writeFileSync(hook, 'import { register } from "node:module";\nregister("./record.mjs", import.meta.url);\n');
    mkdirSync(join(dir, "files"));
    writeFileSync(join(dir, "files", "hello.txt"), "hello\n");
    execFileSync("tar", ["-cf", join(dir, "files.tar"), "-C", join(dir, "files"), "."]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The modules `ocify build` loads for a layer from `source`, the build having succeeded. */
  function loadedBy(source: string, name: string): string[] {
    const loaded = join(dir, `${name}.loaded`);
    const result = spawnSync(
      process.execPath,
      ["--import", hook, ocifyBin, "build", "--from", "scratch", "--layer", `${source}:/app`, "-t", `oci:${join(dir, name)}:latest`],
      { env: { ...process.env, OCIFY_TEST_LOADED: loaded, OCIFY_CACHE_DIR: join(dir, "cache") }, encoding: "utf8" },
    );
    assert.equal(result.status, 0, result.stderr);
    return readFileSync(loaded, "utf8").trim().split("\n");
  }

  it("loads the tarball reader for a tarball layer only", () => {
    const fromDirectory = loadedBy(join(dir, "files"), "from-dir");
    assert.ok(
      fromDirectory.some((url) => url.endsWith("/dist/layer/build.js")),
      "the hook sees the build's modules",
    );
    assert.deepEqual(
      fromDirectory.filter((url) => url.endsWith("/layer/tar-reader.js") || url.endsWith("/layer/tarball.js")),
      [],
      "a directory's build loads no tarball code",
    );
    const fromTarball = loadedBy(join(dir, "files.tar"), "from-tar");
    assert.ok(
      fromTarball.some((url) => url.endsWith("/layer/tar-reader.js")),
      "a tarball's build does",
    );
  });
});
