#!/usr/bin/env node
// Entry point. `--version` is answered here, before any module of ocify loads, so it stays fast.
import { readFileSync } from "node:fs";

const first = process.argv[2];
if (first === "--version" || first === "-v") {
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`ocify ${version}\n`);
} else {
  await import("../dist/cli/main.js");
}
