#!/usr/bin/env node
// Fails when a function in src/ (tests and test support aside) is longer than 80 lines, counting from
// the line of its name to its closing brace, nested functions included. `npm run check` runs it.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

const limit = 80;
// Known exceptions, each with the reason it waits: remove an entry once its function is split.
const waiting = new Map([
  ["src/layer/plan.ts:planPath", "split when tar-fidelity's changes to plan.ts are in main"],
  ["src/layer/tarball.ts:planTarball", "split when tar-fidelity's changes to tarball.ts are in main"],
]);
const root = new URL("..", import.meta.url).pathname;

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "test-support" ? [] : sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

function nameOf(node, file) {
  if (node.name) return node.name.getText(file);
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) {
    return parent.name.getText(file);
  }
  return "(anonymous)";
}

const long = [];
for (const path of sources(join(root, "src"))) {
  const file = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = file.getLineAndCharacterOfPosition(node.getStart(file)).line;
      const end = file.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      const name = nameOf(node, file);
      if (lines > limit && !waiting.has(`${relative(root, path)}:${name}`))
        long.push(`${relative(root, path)}:${start + 1}: ${name} is ${lines} lines`);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
}
if (long.length > 0) {
  process.stderr.write(`Functions longer than ${limit} lines (split them into named steps):\n${long.join("\n")}\n`);
  process.exit(1);
}
