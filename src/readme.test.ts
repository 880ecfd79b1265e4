/** The README's quick start is a promise: exactly two commands, and the first one really writes an image archive. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { repoRoot, runOk } from "./test-support/cli.js";

function quickStart(): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Quick start"));
  assert.ok(section, "README has a Quick start section");
  const blocks = [...section.matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  assert.equal(blocks.length, 1, "one fenced block");
  return (blocks[0] as string).trim().split("\n");
}

describe("README quick start", () => {
  it("has exactly two commands: the example build and the test run", () => {
    const commands = quickStart();
    assert.equal(commands.length, 2);
    assert.match(commands[0] as string, /ocify\.js build .*-t docker-archive:/);
    assert.match(commands[1] as string, /npm test/);
    const ci = readFileSync(join(repoRoot, ".ci/run"), "utf8");
    assert.ok(ci.includes(commands[1] as string), ".ci/run calls the README's test command");
  });

  it("the first command builds the bundled example into an archive skopeo reads", async () => {
    const [first] = quickStart();
    // npm install has run already (we are its test); the rest of the line runs as written, in a scratch directory.
    const command = (first as string).replace(/^npm install && /, "");
    const dir = mkdtempSync(join(tmpdir(), "ocify-readme-"));
    try {
      symlinkSync(join(repoRoot, "bin"), join(dir, "bin"));
      symlinkSync(join(repoRoot, "examples"), join(dir, "examples"));
      execFileSync("sh", ["-c", command], { cwd: dir, env: { ...process.env, OCIFY_CACHE_DIR: join(dir, "cache") }, stdio: "pipe" });
      const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", `docker-archive:${join(dir, "hello.tar")}`]));
      assert.deepEqual(config.config.Entrypoint, ["/app/hello.sh"]);
      assert.ok(config.config.Env.includes("MODE=demo"));
      const manifest = JSON.parse(execFileSync("tar", ["-xOf", join(dir, "hello.tar"), "manifest.json"], { encoding: "utf8" }));
      assert.deepEqual(manifest[0].RepoTags, ["hello:latest"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
