/**
 * readTar: a tar read into tree entries, its files spooled. The input here is in memory, so its bytes
 * are there before the spool file is open: the entries must still all arrive.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import tarStream from "tar-stream";
import { readTar } from "./tar-reader.js";

async function tarBytes(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o640, uid: 7, gid: 8 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("readTar", () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-tar-reader-"));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("takes every entry of an input that is quicker than the spool file's open, and spools their bytes", async () => {
    const spool = join(work, "spool");
    const read = await readTar(Readable.from([await tarBytes({ "etc/passwd": "root:x:0:0\n", "opt/bin": "tool\n" })]), "a tar", 3, spool);
    assert.deepEqual(
      read.entries.map((e) => [e.name, e.node.type, e.node.mode, e.node.uid, e.node.gid, e.node.content]),
      [
        ["etc/passwd", "file", 0o640, 7, 8, { layer: 3, name: "etc/passwd" }],
        ["opt/bin", "file", 0o640, 7, 8, { layer: 3, name: "opt/bin" }],
      ],
    );
    const bytes = readFileSync(spool);
    const at = (name: string) => {
      const range = read.spooled.get(name) as { start: number; size: number };
      return bytes.subarray(range.start, range.start + range.size).toString();
    };
    assert.deepEqual([at("etc/passwd"), at("opt/bin")], ["root:x:0:0\n", "tool\n"]);
  });

  it("fails, and stops reading its input, when the spool file cannot be made", async () => {
    const input = Readable.from([await tarBytes({ a: "a" })]);
    await assert.rejects(readTar(input, "a tar", 0, join(work, "no-such-dir", "spool")), { code: "ENOENT" });
    assert.equal(input.destroyed, true);
  });
});
