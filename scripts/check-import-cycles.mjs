#!/usr/bin/env node
// Fails when the modules of src/ (tests and test support aside) import each other in a circle. Every
// import counts: static, dynamic (`import("./x.js")`), re-exports and type-only imports alike, since a
// type that runs both ways ties the two modules together just as much. `npm run check` runs it.
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

if (cycles.length > 0) {
  const lines = cycles.map((component) => {
    const members = new Set(component);
    const arrows = component.flatMap((from) =>
      (graph.get(from) ?? []).filter((to) => members.has(to)).map((to) => `    ${relative(root, from)} -> ${relative(root, to)}`),
    );
    return `  ${component.length} modules:\n${arrows.join("\n")}`;
  });
  process.stderr.write(`Import cycles in src/ (move what both sides need below them):\n${lines.join("\n")}\n`);
  process.exit(1);
}
