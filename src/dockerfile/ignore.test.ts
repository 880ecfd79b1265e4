import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cleanPath, IgnoreMatcher, parseIgnoreFile } from "./ignore.js";

function matcher(text: string): IgnoreMatcher {
  return new IgnoreMatcher(parseIgnoreFile(text));
}

describe(".dockerignore", () => {
  it("reads patterns: comments in column 1, blank lines, cleaned paths, leading / dropped", () => {
    assert.deepEqual(parseIgnoreFile("# c\n\n  a/../b/  \n/abs\n! keep \n./x//y\n #not-a-comment\n"), [
      "b",
      "abs",
      "!keep",
      "x/y",
      "#not-a-comment",
    ]);
  });

  it("cleans paths as Go's path.Clean does", () => {
    assert.equal(cleanPath("a/./b/../c//"), "a/c");
    assert.equal(cleanPath("../a"), "../a");
    assert.equal(cleanPath("/../a"), "/a");
    assert.equal(cleanPath(""), ".");
  });

  it("keeps * and ? within one path element", () => {
    const m = matcher("*/temp*\ntemp?\n");
    assert.equal(m.ignores("dir/temporary.txt"), true);
    assert.equal(m.ignores("dir/temp"), true);
    assert.equal(m.ignores("dir/sub/temp"), false);
    assert.equal(m.ignores("tempa"), true);
    assert.equal(m.ignores("temp"), false);
    assert.equal(m.ignores("tempab"), false);
  });

  it("lets ** span any number of elements", () => {
    const m = matcher("**/*.go\nlogs/**\n");
    assert.equal(m.ignores("main.go"), true);
    assert.equal(m.ignores("a/b/c.go"), true);
    assert.equal(m.ignores("a/b/c.gox"), false);
    assert.equal(m.ignores("logs/x/y"), true);
    assert.equal(m.ignores("logs"), false);
  });

  it("ignores everything below a matched directory", () => {
    const m = matcher("build\n");
    assert.equal(m.ignores("build"), true);
    assert.equal(m.ignores("build/a/b.txt"), true);
    assert.equal(m.ignores("src/build"), false);
  });

  it("applies the last matching pattern: ! re-includes, a later pattern can exclude again", () => {
    const m = matcher("*.md\n!README*.md\nREADME-secret.md\n");
    assert.equal(m.ignores("a.md"), true);
    assert.equal(m.ignores("README.md"), false);
    assert.equal(m.ignores("README-secret.md"), true);
    const reversed = matcher("*.md\nREADME-secret.md\n!README*.md\n");
    assert.equal(reversed.ignores("README-secret.md"), false);
  });

  it("treats regular-expression characters literally and \\ as an escape", () => {
    const m = matcher("a+b.(c)\nq\\*\n");
    assert.equal(m.ignores("a+b.(c)"), true);
    assert.equal(m.ignores("aab.(c)"), false);
    assert.equal(m.ignores("q*"), true);
    assert.equal(m.ignores("qx"), false);
  });

  it("supports character classes", () => {
    const m = matcher("file[0-9].txt\n");
    assert.equal(m.ignores("file7.txt"), true);
    assert.equal(m.ignores("filex.txt"), false);
  });

  it("walks an ignored directory only when an exception names a path inside it", () => {
    const m = matcher("vendor\n!vendor/keep.txt\n");
    assert.equal(m.ignores("vendor/keep.txt"), false);
    assert.equal(m.ignores("vendor/other.txt"), true);
    assert.equal(m.mayIncludeUnder("vendor"), true);
    assert.equal(m.mayIncludeUnder("other"), false);
    assert.equal(matcher("vendor\n!**/keep.txt\n").mayIncludeUnder("vendor"), false);
  });
});
