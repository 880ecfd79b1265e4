/**
 * A promise rejected with no handler, or an exception nothing caught, is a bug in ocify: the CLI says so
 * in its own words (internal error, please report) with exit 70, not with Node's dump and the exit 1 of
 * an ordinary failure; and runOcify makes either a test failure wherever it happens.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify } from "../test-support/cli.js";

describe("the CLI and a bug it did not catch", () => {
  let dir: string;
  /** NODE_OPTIONS that preload `code` into ocify: it runs once the command is done and the process is about to exit. */
  const preloading = (name: string, code: string): NodeJS.ProcessEnv => {
    const path = join(dir, `${name}.mjs`);
    writeFileSync(path, `process.once("beforeExit", () => { ${code} });\n`);
    return { NODE_OPTIONS: `--import=${path}` };
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ocify-internal-error-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases = [
    ["a promise rejected with no handler", "rejection", 'Promise.reject(new Error("deliberately left unhandled"));'],
    ["an exception nothing caught", "exception", 'setImmediate(() => { throw new Error("deliberately left unhandled"); });'],
  ] as const;

  it("reports a command that stalls (awaiting what can no longer come) as an internal error, not as success", async () => {
    // Every open() through fs/promises never settles: the build waits with no I/O left, the loop runs empty.
    const path = join(dir, "stall.mjs");
    writeFileSync(
      path,
      'import fsp from "node:fs/promises";\nimport { syncBuiltinESMExports } from "node:module";\nfsp.open = () => new Promise(() => {});\nsyncBuiltinESMExports();\n',
    );
    const tree = join(dir, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "a"), "a\n");
    const out = join(dir, "stalled.tar");
    const result = await runOcify(["build", "-q", "--from", "scratch", "--layer", `${tree}:/`, "-t", `docker-archive:${out}`], {
      env: { NODE_OPTIONS: `--import=${path}`, OCIFY_CACHE_DIR: join(dir, "cache") },
      allowInternalError: true,
    });
    assert.equal(result.code, 70, result.stderr);
    assert.match(
      result.stderr,
      /^ocify: internal error \(the command stopped unfinished, with nothing left to wait for\), please report it\n$/,
    );
    assert.deepEqual(
      readdirSync(dir).filter((name) => name.includes("stalled")),
      [],
      "nothing written beside the target",
    );
  });

  for (const [what, name, code] of cases) {
    it(`reports ${what} as an internal error with exit 70`, async () => {
      const result = await runOcify(["--help"], { env: preloading(name, code), allowInternalError: true });
      assert.equal(result.code, 70, result.stderr);
      assert.match(result.stdout, /^Usage: ocify/, "the command itself ran");
      assert.match(result.stderr, new RegExp(`^ocify: internal error \\(${what}\\), please report it with this output:\\n`));
      assert.match(result.stderr, /Error: deliberately left unhandled\n\s+at /, "with the stack, for the report");
      assert.doesNotMatch(result.stderr, /Node\.js v\d/, "not Node's own dump");
    });

    it(`fails a test that meets ${what}`, async () => {
      await assert.rejects(runOcify(["--help"], { env: preloading(name, code) }), /ocify --help: internal error \(exit 70\)/);
    });
  }
});
