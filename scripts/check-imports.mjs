#!/usr/bin/env node
// Checks the import graph of src/ (tests and test support aside); `npm run check` runs it. Fails when
// modules import each other in a circle, or when a module imports from a floor above its own (the
// floors of docs/architecture.md, in `floors` below); the CLI may import only the public entry. Every
// import counts: static, dynamic (`import("./x.js")`), re-exports and type-only imports alike, since a
// type that runs both ways ties the two modules together just as much.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const root = new URL("..", import.meta.url).pathname;
const src = join(root, "src");

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "test-support" ? [] : sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The relative specifiers a module names in imports, re-exports and import() calls with a literal. */
function specifiers(path) {
  const file = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (argument && ts.isStringLiteralLike(argument)) found.push(argument.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found.filter((s) => s.startsWith("."));
}

const graph = new Map();
for (const path of sources(src)) {
  const targets = specifiers(path)
    .map((s) => resolve(dirname(path), s.replace(/\.js$/, ".ts")))
    .filter((target) => existsSync(target) && !target.endsWith(".test.ts"));
  graph.set(path, [...new Set(targets)]);
}

// The floors, bottom up: a module may import from its own folder and from lower floors only. A module
// that matches no pattern is reported, not refused: give it a floor here and in docs/architecture.md.
const floors = [
  ["errors", "digest", "media-types", "reference", "bounded", "fs-atomic", "fs-lock", "decompression", "progress", "canonical-json"],
  ["codec", "tar/"],
  ["image/", "mutate"],
  ["cache", "cache-prune", "blob-locations", "layer-facts"],
  ["layer/", "registry/"],
  ["transport/", "foreign-layers", "cache-repo/"],
  ["copy"],
  ["build", "build/", "build-dockerfile", "import", "inspect", "validate", "dockerfile/", "attach"],
  ["index"],
  ["cli/"],
];
const nameOf = (path) => relative(src, path).replace(/\.ts$/, "");
const groupOf = (name) => (name.includes("/") ? `${name.slice(0, name.indexOf("/"))}/` : name);
function floorOf(path) {
  const group = groupOf(nameOf(path));
  const floor = floors.findIndex((names) => names.includes(group));
  return floor < 0 ? undefined : floor;
}
const upward = [];
const unplaced = new Set();
for (const [from, targets] of graph) {
  const floor = floorOf(from);
  if (floor === undefined) unplaced.add(nameOf(from));
  for (const to of targets) {
    const target = floorOf(to);
    if (floor === undefined || target === undefined || groupOf(nameOf(from)) === groupOf(nameOf(to))) continue;
    const cli = groupOf(nameOf(from)) === "cli/";
    if (target > floor || (cli && nameOf(to) !== "index")) upward.push(`    ${nameOf(from)} -> ${nameOf(to)}`);
  }
}
if (unplaced.size > 0) process.stderr.write(`Modules with no floor in scripts/check-imports.mjs (add them): ${[...unplaced].join(", ")}\n`);

// Tarjan's strongly connected components: each component of more than one module is a cycle.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
function connect(v) {
  index.set(v, counter);
  low.set(v, counter);
  counter++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!index.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) === index.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    const selfLoop = component.length === 1 && (graph.get(v) ?? []).includes(v);
    if (component.length > 1 || selfLoop) cycles.push(component);
  }
}
for (const v of graph.keys()) if (!index.has(v)) connect(v);

if (upward.length > 0) {
  process.stderr.write(`Imports from a floor above (or, from the CLI, from anything but index.ts):\n${upward.join("\n")}\n`);
}
if (cycles.length > 0) {
  const lines = cycles.map((component) => {
    const members = new Set(component);
    const arrows = component.flatMap((from) =>
      (graph.get(from) ?? []).filter((to) => members.has(to)).map((to) => `    ${relative(root, from)} -> ${relative(root, to)}`),
    );
    return `  ${component.length} modules:\n${arrows.join("\n")}`;
  });
  process.stderr.write(`Import cycles in src/ (move what both sides need below them):\n${lines.join("\n")}\n`);
}
if (upward.length > 0 || cycles.length > 0) process.exit(1);
