#!/usr/bin/env node
// Runs every compiled *.test.js under dist/ with node's test runner (Node 20 has no glob for --test).
// Extra arguments are passed to node --test (e.g. --test-name-pattern=registry).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return find(path);
    return entry.name.endsWith(".test.js") ? [path] : [];
  });
}

const filter = process.env.OCIFY_TEST_FILTER;
const files = find("dist")
  .filter((f) => !filter || f.includes(filter))
  .sort();
const args = ["--test", "--test-reporter=spec", ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(result.status ?? 1);
