import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { InputError } from "./errors.js";
import { hostTag } from "./fs-atomic.js";
import { withFileLock } from "./fs-lock.js";
import { deadPid } from "./test-support/process.js";

const lockModule = new URL("./fs-lock.js", import.meta.url).href;

describe("file lock between processes", () => {
  const work = mkdtempSync(join(tmpdir(), "ocify-fs-lock-"));
  after(() => rmSync(work, { recursive: true, force: true }));

  it("serializes read-modify-write across processes: no update is lost", async () => {
    const counter = join(work, "counter");
    const lock = join(work, "counter.lock");
    writeFileSync(counter, "0");
    // Each child reads, yields, and writes back +1, 20 times: without the lock, updates are lost.
    const script = `
      import { readFileSync, writeFileSync } from "node:fs";
      const { withFileLock } = await import(${JSON.stringify(lockModule)});
      for (let i = 0; i < 20; i++) {
        await withFileLock(${JSON.stringify(lock)}, async () => {
          const n = Number(readFileSync(${JSON.stringify(counter)}, "utf8"));
          await new Promise((r) => setTimeout(r, 1));
          writeFileSync(${JSON.stringify(counter)}, String(n + 1));
        }, { what: "counter" });
      }`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" }));
    const codes = await Promise.all(children.map((c) => new Promise((resolve) => c.on("close", resolve))));
    assert.deepEqual(codes, [0, 0, 0, 0]);
    assert.equal(readFileSync(counter, "utf8"), "80");
    assert.ok(!existsSync(lock));
  });

  it("breaks a lock whose owner is gone", async () => {
    const lock = join(work, "stale.lock");
    writeFileSync(lock, `${deadPid()}-${hostTag}`);
    assert.equal(await withFileLock(lock, async () => "held", { what: "x", timeoutMs: 5000 }), "held");
    assert.ok(!existsSync(lock));
  });

  it("reports a lock held too long by a live process as one line, and leaves it", async () => {
    const lock = join(work, "held.lock");
    writeFileSync(lock, `${process.pid}-${hostTag}`);
    await assert.rejects(
      withFileLock(lock, async () => "never", { what: "oci:layout: index.json", timeoutMs: 200 }),
      (error: unknown) =>
        error instanceof InputError && /locked by another ocify process/.test(error.message) && !error.userMessage.includes("\n"),
    );
    assert.ok(existsSync(lock));
  });
});
