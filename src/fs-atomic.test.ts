import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, describe, it } from "node:test";
import {
  hostTag,
  openAtomicFile,
  removeLiveTempsSync,
  removeStaleOwned,
  removeStaleTemps,
  tempPathFor,
  writeFileAtomic,
} from "./fs-atomic.js";
import { deadPid } from "./test-support/process.js";

describe("atomic files and what killed runs leave", () => {
  const work = mkdtempSync(join(tmpdir(), "ocify-fs-atomic-"));
  after(() => rmSync(work, { recursive: true, force: true }));

  it("names temp files after the writing process", () => {
    const name = basename(tempPathFor(join(work, "out.tar")));
    assert.match(name, new RegExp(`^\\.out\\.tar\\.${process.pid}-${hostTag}-[0-9a-f]{8}\\.tmp$`));
  });

  it("removes temp files of dead writers and old ones, keeps live writers' and other files", async () => {
    const dir = join(work, "stale");
    mkdirSync(dir);
    const dead = deadPid();
    const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
    try {
      const names = {
        dead: `.out.tar.${dead}-${hostTag}-0011aabb.tmp`,
        live: `.out.tar.${sleeper.pid}-${hostTag}-0011aabb.tmp`,
        mine: `.out.tar.${process.pid}-${hostTag}-0011aabb.tmp`,
        otherHost: `.out.tar.${dead}-ffffff-0011aabb.tmp`,
        oldOtherHost: `.out.tar.${dead}-eeeeee-0011aabb.tmp`,
        legacyOld: ".out.tar.0123456789ab.tmp",
        otherTarget: `.other.tar.${dead}-${hostTag}-0011aabb.tmp`,
        user: "notes.tmp",
      };
      for (const name of Object.values(names)) writeFileSync(join(dir, name), "x");
      const dayAgo = (Date.now() - 25 * 3600_000) / 1000;
      utimesSync(join(dir, names.oldOtherHost), dayAgo, dayAgo);
      utimesSync(join(dir, names.legacyOld), dayAgo, dayAgo);
      assert.equal(await removeStaleTemps(dir, "out.tar"), 3);
      const left = new Set(readdirSync(dir));
      for (const kept of [names.live, names.mine, names.otherHost, names.otherTarget, names.user]) assert.ok(left.has(kept), kept);
      for (const gone of [names.dead, names.oldOtherHost, names.legacyOld]) assert.ok(!left.has(gone), gone);
      assert.equal(await removeStaleTemps(dir), 1, "without a target, any name's");
    } finally {
      sleeper.kill();
    }
  });

  it("removes owned temp directories of dead writers only", async () => {
    const dir = join(work, "owned");
    mkdirSync(join(dir, `ocify-archive-${deadPid()}-${hostTag}-abc`), { recursive: true });
    mkdirSync(join(dir, `ocify-archive-${process.pid}-${hostTag}-abc`), { recursive: true });
    assert.equal(await removeStaleOwned(dir, "ocify-archive-"), 1);
    assert.deepEqual(readdirSync(dir), [`ocify-archive-${process.pid}-${hostTag}-abc`]);
  });

  it("an abort right after a write leaves no temp file, while other files come and go in the directory", async () => {
    // The temp file is opened on the thread pool; a removal that ran before that open ended used to leave
    // it behind (seen in CI). The churn slows the directory down so that such an open is still running.
    const dir = join(work, "abort-churn");
    mkdirSync(dir, { recursive: true });
    let busy = true;
    const churn = Promise.all(
      [0, 1, 2].map(async (k) => {
        for (let n = 0; busy; n++) {
          await writeFile(join(dir, `.churn-${k}-${n}`), "x");
          await rm(join(dir, `.churn-${k}-${n}`));
        }
      }),
    );
    try {
      for (let i = 0; i < 900; i++) {
        const file = await openAtomicFile(join(dir, `f${i % 10}`));
        file.stream.write("two");
        await file.abort();
      }
    } finally {
      busy = false;
      await churn;
    }
    assert.deepEqual(readdirSync(dir), []);
  });

  it("commits whole files and leaves nothing on abort; a forced exit removes what is still being written", async () => {
    const target = join(work, "atomic", "file");
    await writeFileAtomic(target, "one");
    assert.equal(readFileSync(target, "utf8"), "one");
    const aborted = await openAtomicFile(target);
    aborted.stream.write("two");
    await aborted.abort();
    assert.equal(readFileSync(target, "utf8"), "one");
    const pending = await openAtomicFile(join(work, "atomic", "pending"));
    await new Promise<void>((resolve) => pending.stream.write("x", () => resolve()));
    assert.ok(existsSync(pending.path));
    removeLiveTempsSync();
    assert.ok(!existsSync(pending.path));
    assert.deepEqual(readdirSync(join(work, "atomic")), ["file"]);
    pending.stream.destroy();
  });
});
