import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidReferenceError } from "./errors.js";
import { familiarName, formatReference, parseReference, parseReferenceWithDefaultTag, registryApiHost } from "./reference.js";

const hex = "a".repeat(64);

describe("parseReference", () => {
  const cases: [string, string, string, (string | undefined)?, string?][] = [
    ["alpine", "docker.io", "library/alpine"],
    ["alpine:3.20", "docker.io", "library/alpine", "3.20"],
    ["docker.io/library/alpine:3.20", "docker.io", "library/alpine", "3.20"],
    ["index.docker.io/foo/bar", "docker.io", "foo/bar"],
    ["foo/bar:v1", "docker.io", "foo/bar", "v1"],
    ["localhost/app", "localhost", "app"],
    ["localhost:5000/team/app:1.0", "localhost:5000", "team/app", "1.0"],
    ["127.0.0.1:5000/a/b/c:x_y-z.1", "127.0.0.1:5000", "a/b/c", "x_y-z.1"],
    ["[::1]:5000/app", "[::1]:5000", "app"],
    [`ghcr.io/o/r@sha256:${hex}`, "ghcr.io", "o/r", undefined, `sha256:${hex}`],
    [`ghcr.io/o/r:t@sha256:${hex}`, "ghcr.io", "o/r", "t", `sha256:${hex}`],
    ["registry.cn-hangzhou.aliyuncs.com/ns/app", "registry.cn-hangzhou.aliyuncs.com", "ns/app"],
    ["Registry/app", "Registry", "app"],
    ["a__b/c-d--e.f", "docker.io", "a__b/c-d--e.f"],
  ];
  for (const [input, registry, repository, tag, digest] of cases) {
    it(`parses ${input}`, () => {
      const ref = parseReference(input);
      assert.equal(ref.registry, registry);
      assert.equal(ref.repository, repository);
      assert.equal(ref.tag, tag);
      assert.equal(ref.digest, digest);
    });
  }

  const invalid: [string, RegExp][] = [
    ["", /empty/],
    ["Alpine", /lowercase/],
    ["docker.io/Library/alpine", /lowercase/],
    ["alpine:", /not a valid tag/],
    ["alpine:-x", /not a valid tag/],
    ["alpine@sha256:abc", /not a valid digest/],
    ["https://ghcr.io/o/r", /scheme/],
    ["foo//bar", /not a valid repository name/],
    ["foo/bar_", /not a valid repository name/],
    ["foo bar", /whitespace/],
    ["ghcr.io/", /repository name is empty/],
    ["-bad.io/x", /registry host/],
    [`r/${"a".repeat(300)}`, /longer than 255/],
  ];
  for (const [input, reason] of invalid) {
    it(`rejects ${JSON.stringify(input)} with a one-line reason`, () => {
      assert.throws(
        () => parseReference(input),
        (error: unknown) => error instanceof InvalidReferenceError && reason.test(error.message) && !error.message.includes("\n"),
      );
    });
  }
});

describe("reference helpers", () => {
  it("defaults the tag to latest only without a digest", () => {
    assert.equal(parseReferenceWithDefaultTag("alpine").tag, "latest");
    assert.equal(parseReferenceWithDefaultTag(`alpine@sha256:${hex}`).tag, undefined);
  });
  it("formats canonical and familiar names", () => {
    const ref = parseReference("alpine:3.20");
    assert.equal(formatReference(ref), "docker.io/library/alpine:3.20");
    assert.equal(familiarName(ref), "alpine");
    assert.equal(familiarName(parseReference("foo/bar")), "foo/bar");
    assert.equal(familiarName(parseReference("localhost:5000/x")), "localhost:5000/x");
  });
  it("maps Docker Hub to its API host", () => {
    assert.equal(registryApiHost("docker.io"), "registry-1.docker.io");
    assert.equal(registryApiHost("ghcr.io"), "ghcr.io");
  });
});
