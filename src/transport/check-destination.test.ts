/** checkDestination: where a destination can be written, told before any work; and the archive writer's own check. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { InputError, UsageError } from "../errors.js";
import { checkDestination, openDestination, parseTransportReference } from "./transport.js";

describe("checkDestination", () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-check-destination-"));
    mkdirSync(join(work, "empty"));
    mkdirSync(join(work, "layout"));
    writeFileSync(join(work, "layout", "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    mkdirSync(join(work, "notes"));
    writeFileSync(join(work, "notes", "todo.txt"), "mine\n");
    writeFileSync(join(work, "old.tar"), "an archive written before\n");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const check = (text: string) => checkDestination(parseTransportReference(text));

  it("accepts what can be written: a registry, a new or existing archive file, a new, empty or existing layout", () => {
    for (const text of [
      "127.0.0.1:5000/team/app:1",
      `oci-archive:${join(work, "new.tar")}`,
      `docker-archive:${join(work, "old.tar")}:team/app:1`,
      `oci:${join(work, "empty")}`,
      `oci:${join(work, "layout")}:v2`,
      `oci:${join(work, "new", "deeper", "layout")}`,
    ]) {
      assert.doesNotThrow(() => check(text), text);
    }
  });

  it("refuses what cannot be, as usage errors", () => {
    const cases: [string, RegExp][] = [
      [`oci-archive:${join(work, "empty")}`, /empty is a directory, not an archive file/],
      [`docker-archive:${join(work, "empty")}`, /empty is a directory, not an archive file/],
      [`docker-archive:${join(work, "none", "app.tar")}`, /directory .*none does not exist/],
      [`oci-archive:${join(work, "old.tar", "app.tar")}`, /old\.tar is not a directory/],
      ["oci-archive:/dev/null", /is not a regular file/],
      [`docker-archive:${join(work, "app.tar")}:@1`, /@index selects an image to read/],
      [`oci:${join(work, "old.tar")}`, /old\.tar is not a directory/],
      [`oci:${join(work, "old.tar", "sub", "layout")}`, /old\.tar is not a directory/],
      [`oci:${join(work, "notes")}`, /notes is not empty and not an OCI layout/],
    ];
    for (const [text, pattern] of cases) {
      assert.throws(
        () => check(text),
        (error: unknown) => error instanceof UsageError && pattern.test(error.message),
        text,
      );
    }
  });

  it("an archive opened for writing at a directory fails at once, not when it is renamed into place", async () => {
    await assert.rejects(openDestination(parseTransportReference(`oci-archive:${join(work, "empty")}`)), (error: unknown) => {
      assert.ok(error instanceof InputError, String(error));
      assert.match(error.message, /is a directory/);
      return true;
    });
    assert.deepEqual(readdirSync(join(work, "empty")), []);
    assert.deepEqual(
      readdirSync(work).filter((name) => name.endsWith(".tmp")),
      [],
      "no temp file",
    );
  });
});
