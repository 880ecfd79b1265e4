/**
 * A promise rejected with no handler, or an exception nothing caught, is a bug in ocify: the CLI says so
 * in its own words (internal error, please report) with exit 70, not with Node's dump and the exit 1 of
 * an ordinary failure; and runOcify makes either a test failure wherever it happens.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
