#!/usr/bin/env node
// `npm run reliability`: runs the fault, kill and hostile-input tests (compiled, in dist/) with
// OCIFY_RELIABILITY_FIGURES set, so that each records what it did (src/test-support/figures.ts), and
// writes the sums into docs/reliability.md between its "figures" markers. Every figure comes from that
// one run; a failing test fails the command and leaves the document as it was.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const tests = ["dist/cli/faults.test.js", "dist/cli/push-kill.test.js", "dist/cli/interrupt.test.js", "dist/hostile-input.test.js"];
const dir = mkdtempSync(join(tmpdir(), "ocify-reliability-"));
const figuresPath = join(dir, "figures.jsonl");
writeFileSync(figuresPath, "");
const run = spawnSync(process.execPath, ["--test", "--test-reporter=dot", ...tests], {
  stdio: "inherit",
  env: { ...process.env, OCIFY_RELIABILITY_FIGURES: figuresPath },
});
const lines = readFileSync(figuresPath, "utf8")
  .split("\n")
  .filter(Boolean)
  .map((line) => JSON.parse(line));
rmSync(dir, { recursive: true, force: true });
if (run.status !== 0) {
  process.stderr.write("reliability: a test failed; docs/reliability.md is unchanged\n");
  process.exit(run.status ?? 1);
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const out = [];
const faults = lines.filter((l) => l.kind === "fault");
for (const f of faults) {
  out.push(
    `Faults: ${f.scenario}: ${f.requests} requests, ${f.injected} faults injected (${((100 * f.injected) / f.requests).toFixed(0)}%), every one survived (the run succeeded, bit-identical to a fault-free run).`,
    "",
  );
  out.push("| fault kind | injected | survived |", "| --- | --- | --- |");
  for (const [kind, n] of Object.entries(f.kinds)) out.push(`| ${kind} | ${n} | ${n} |`);
  out.push("");
}
const kills = lines.filter((l) => l.kind === "kill");
const byScenario = new Map();
for (const k of kills) byScenario.set(k.scenario, [...(byScenario.get(k.scenario) ?? []), k]);
out.push("| kills | runs killed | survived (rerun correct, nothing half-written) |", "| --- | --- | --- |");
for (const [scenario, list] of byScenario) out.push(`| ${scenario} | ${list.length} | ${list.filter((k) => k.survived !== 0).length} |`);
out.push("");
const pushes = kills.filter((k) => k.total !== undefined);
if (pushes.length > 0) {
  out.push(
    "| push killed (SIGKILL) | whole push | sent before the kill | left | re-sent by the rerun | re-sent beyond what was left |",
    "| --- | --- | --- | --- | --- | --- |",
  );
  for (const k of pushes) {
    const left = k.total - k.before;
    out.push(
      `| ${k.scenario} | ${mib(k.total)} | ${mib(k.before)} | ${mib(left)} | ${mib(k.rerun)} | ${mib(Math.max(0, k.rerun - left))} |`,
    );
  }
  out.push("");
}
const hostile = lines.filter((l) => l.kind === "hostile");
out.push(
  `Hostile inputs: ${hostile.length} tried, ${hostile.filter((h) => h.refused).length} refused with one line and exit 1, nothing written outside the target.`,
);

const docPath = "docs/reliability.md";
const doc = readFileSync(docPath, "utf8");
const start = "<!-- figures: written by npm run reliability -->";
const end = "<!-- end of figures -->";
const [head, rest] = doc.split(start);
if (rest === undefined || !rest.includes(end)) throw new Error(`${docPath} lacks the figures markers`);
const stamp = `Run of ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.`;
writeFileSync(docPath, `${head}${start}\n${stamp}\n\n${out.join("\n")}\n${end}${rest.split(end)[1]}`);
process.stdout.write(`${out.join("\n")}\n`);
