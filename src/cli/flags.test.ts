/** Flags the commands do not know, or given without the value they need: one line in ocify's words, exit 2. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";
import { closestFlag } from "./flags.js";

describe("flag errors", () => {
  it("name an unknown flag and the known one it most likely meant, with balanced quotes", async () => {
    const cases: [string[], RegExp][] = [
      [["build", "--from", "scratch", "--tags", "oci:x"], /^ocify: unknown option --tags \(did you mean --tag\?\)$/],
      [["build", "--platfrom", "linux/arm64"], /^ocify: unknown option --platfrom \(did you mean --platform\?\)$/],
      [["build", "--insecure", "h:1"], /^ocify: unknown option --insecure \(did you mean --insecure-registry\?\)$/],
      [["build", "--entry-point=/app"], /^ocify: unknown option --entry-point \(did you mean --entrypoint\?\)$/],
      [["import", "--labels", "a=b", "rootfs"], /^ocify: unknown option --labels \(did you mean --label\?\)$/],
      [["copy", "--al", "a", "b"], /^ocify: unknown option --al \(did you mean --all\?\)$/],
      [["inspect", "--rwa", "x"], /^ocify: unknown option --rwa \(did you mean --raw\?\)$/],
      [["build", "--frobnicate"], /^ocify: unknown option --frobnicate \(see --help\)$/],
      [["build", "-x"], /^ocify: unknown option -x \(see --help\)$/],
      [["build", "--from", "scratch", "-t"], /^ocify: -t needs a value \(see --help\)$/],
      [["build", "--tag", "--quiet"], /^ocify: --tag needs a value \(see --help; a value starting with '-' is written --tag=--quiet\)$/],
      [["build", "--quiet=yes"], /^ocify: --quiet takes no value \(see --help\)$/],
    ];
    for (const [args, pattern] of cases) {
      const result = await runOcify(args);
      assertOneErrorLine(result, pattern, args.join(" "), 2);
      for (const quote of ["'", '"']) {
        assert.equal(result.stderr.split(quote).length % 2, 1, `balanced ${quote} in ${result.stderr}`);
      }
      assert.doesNotMatch(result.stderr, /Unknown option|To specify a positional argument/, "not Node's parser's words");
    }
  });

  it("suggest a flag only when it is close", () => {
    const known = ["tag", "from", "layer", "layer-for", "platform", "insecure-registry", "quiet", "env", "entrypoint"];
    assert.equal(closestFlag("tags", known), "tag");
    assert.equal(closestFlag("form", known), "from", "two letters swapped");
    assert.equal(closestFlag("layers", known), "layer");
    assert.equal(closestFlag("layer-fro", known), "layer-for");
    assert.equal(closestFlag("insec", known), "insecure-registry", "the start of one flag");
    assert.equal(closestFlag("ins", known), "insecure-registry");
    assert.equal(closestFlag("in", known), undefined, "too short to guess");
    assert.equal(closestFlag("e", known), undefined);
    assert.equal(closestFlag("output", known), undefined);
    assert.equal(closestFlag("verbose", known), undefined);
  });
});
