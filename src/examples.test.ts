/**
 * The programs in examples/ are compiled against the package's types, as a user's program would import
 * it (`import … from "ocify"`), and run: each must do what it says, checked by reading back what it wrote.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout, writeMultiArchLayout } from "./test-support/base-image.js";
import { repoRoot, runOk } from "./test-support/cli.js";
import { openSource, parseTransportReference } from "./transport/transport.js";
import { validateImage } from "./validate.js";

describe("the examples", () => {
  let work: string;
  let examples: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-examples-"));
    examples = join(work, "examples");
    mkdirSync(examples);
    for (const file of readdirSync(join(repoRoot, "examples"))) {
      if (file.endsWith(".ts") || file === "tsconfig.json" || file === "package.json")
        copyFileSync(join(repoRoot, "examples", file), join(examples, file));
    }
    symlinkSync(join(repoRoot, "examples", "hello"), join(examples, "hello"));
    // The package as a user's project sees it: `ocify` and Node's types in node_modules.
    mkdirSync(join(work, "node_modules", "@types"), { recursive: true });
    symlinkSync(repoRoot, join(work, "node_modules", "ocify"));
    symlinkSync(join(repoRoot, "node_modules", "@types", "node"), join(work, "node_modules", "@types", "node"));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  function run(example: string, args: string[]): string {
    return execFileSync(process.execPath, [join(examples, `${example}.js`), ...args], {
      cwd: work,
      encoding: "utf8",
      env: { ...process.env, OCIFY_CACHE_DIR: join(work, "cache") },
    });
  }

  it("compile against the package's types", () => {
    const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
    execFileSync(process.execPath, [tsc, "-p", join(examples, "tsconfig.json")], { encoding: "utf8" });
  });

  it("build-on-base builds examples/hello on a base", async () => {
    writeBaseImageLayout(join(work, "base"), "latest");
    const out = run("build-on-base", [`oci:${join(work, "base")}:latest`, `oci:${join(work, "built")}:1`]);
    const [digest] = out.trim().split(" ");
    const summary = await validateImage(await openSource(parseTransportReference(`oci:${join(work, "built")}:1`)));
    assert.equal(summary.manifestDigest, digest);
    const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", `oci:${join(work, "built")}:1`]));
    assert.deepEqual(config.config.Entrypoint, ["/app/hello.sh"]);
    assert.ok(config.config.Env.includes("MODE=demo"));
  });

  it("copy-index lists an index's platforms and copies it whole, digest kept", async () => {
    const index = writeMultiArchLayout(join(work, "multi"), "latest");
    const out = run("copy-index", [`oci:${join(work, "multi")}:latest`, `oci-archive:${join(work, "multi.tar")}:latest`]);
    const lines = out.trim().split("\n");
    assert.match(lines[0] as string, /^linux\/amd64 sha256:/);
    assert.match(lines[1] as string, /^linux\/arm64(\/v8)? sha256:/);
    assert.equal(lines[2]?.split(" ")[0], index);
    const summary = await validateImage(await openSource(parseTransportReference(`oci-archive:${join(work, "multi.tar")}:latest`)));
    assert.equal(summary.kind, "index");
  });

  it("in-memory assembles an image from entries a program holds", async () => {
    const archive = join(work, "generated.tar");
    const out = run("in-memory", [`docker-archive:${archive}:generated:1`]);
    const summary = await validateImage(await openSource(parseTransportReference(`docker-archive:${archive}`)));
    assert.equal(summary.kind === "image" && summary.layers.length, 1);
    assert.match(out, /^sha256:[0-9a-f]{64} docker-archive:/);
    const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", `docker-archive:${archive}`]));
    assert.deepEqual(config.config.Entrypoint, ["/usr/local/bin/run.sh"]);
  });
});
