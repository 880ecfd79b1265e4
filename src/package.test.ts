/**
 * The package as users get it: `npm pack`, then `npm install` of the tarball into an empty project with
 * engine-strict, as a user whose npm refuses any package that does not promise to run on their Node.
 * The CLI and the types must then work from there. The npm registry is asked only for what the npm cache
 * lacks (the dependencies' metadata).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { repoRoot } from "./test-support/cli.js";

const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
  version: string;
  engines: { node: string };
  devDependencies: Record<string, string>;
};

/** The oldest Node the README promises: 20.15 brought zlib.crc32, which every gzip member needs. */
const oldestNode = "20.15.0";

/** The environment without what `npm test` sets for its scripts (npm_config_*, npm_package_*…), which would steer a nested npm. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_")));
  return { ...env, ...extra };
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, env = cleanEnv()): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && !stdout ? String(error) : "") });
    });
  });
}

/** A line npm writes when a package's `engines` does not admit the Node it checks against. */
const engineComplaint = /EBADENGINE|Unsupported engine|notsup/i;

describe("the packed package", () => {
  let work: string;
  let tarball: string;
  let files: string[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-package-test-"));
    // dist/ is built (npm test builds first); the prepare script would build it again under running tests.
    const packed = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], repoRoot);
    assert.equal(packed.code, 0, packed.stderr);
    const [summary] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(summary);
    tarball = join(work, summary.filename);
    files = summary.files.map((f) => f.path);
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A new empty project, and `npm install --engine-strict` of the tarball (and `extra`) into it, checked against Node `node`. */
  async function install(name: string, extra: string[], node?: string): Promise<{ dir: string; result: Ran }> {
    const dir = join(work, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true, type: "module" }));
    // npm checks `engines` against process.version: a preload makes it that of the Node asked for.
    let env = cleanEnv();
    if (node) {
      const preload = join(work, `node-${node}.cjs`);
      writeFileSync(preload, `Object.defineProperty(process, "version", { value: "v${node}" });\n`);
      env = cleanEnv({ NODE_OPTIONS: `--require ${preload}` });
    }
    const args = ["install", "--engine-strict", "--prefer-offline", "--no-audit", "--no-fund", tarball, ...extra];
    return { dir, result: await run("npm", args, dir, env) };
  }

  it("ships the built library, the CLI and the license, and no tests or test support", () => {
    assert.ok(files.includes("LICENSE"), "the Apache-2.0 text");
    assert.match(readFileSync(join(repoRoot, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/);
    assert.ok(files.includes("bin/ocify.js") && files.includes("dist/index.js") && files.includes("dist/index.d.ts"));
    const unwanted = files.filter(
      (f) => f.startsWith("dist/test-support/") || /\.test\.(js|d\.ts|js\.map)$/.test(f) || f.startsWith("src/"),
    );
    assert.deepEqual(unwanted, []);
    // libdeflate travels inside: its own `engines` says Node 24 though it runs on 20 (the whole suite does).
    assert.ok(files.includes("node_modules/libdeflate/dist/libdeflate.wasm.mjs"), "libdeflate bundled");
    assert.ok(files.includes("node_modules/libdeflate/LICENSE.txt"), "with its license");
  });

  it("installs with --engine-strict and no engine warning; its CLI runs and its types check", async () => {
    const typesNode = manifest.devDependencies["@types/node"] ?? "20";
    const { dir, result } = await install("user-project", [`@types/node@${typesNode}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(`${result.stdout}\n${result.stderr}`, engineComplaint);

    const version = await run(join(dir, "node_modules", ".bin", "ocify"), ["--version"], dir);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), `ocify ${manifest.version}`);
    // The library loads from the installed package, libdeflate's module included.
    const loaded = await run(
      process.execPath,
      ["--input-type=module", "-e", 'const m = await import("ocify"); console.log(typeof m.build, typeof m.buildLayer);'],
      dir,
    );
    assert.equal(loaded.stdout.trim(), "function function", loaded.stderr);
    assert.ok(existsSync(join(dir, "node_modules", "ocify", "node_modules", "libdeflate", "dist", "libdeflate.wasm.mjs")));
    // A build compresses with the bundled libdeflate: the same image, byte for byte, as this checkout's.
    writeFileSync(join(dir, "hello.txt"), "hello\n".repeat(1000));
    const digestOf = async (bin: string, name: string) => {
      const args = ["build", "--from", "scratch", "--layer", "hello.txt:/hello.txt", "-t", `oci:${name}:1`];
      const built = await run(process.execPath, [bin, ...args], dir, cleanEnv({ OCIFY_CACHE_DIR: join(dir, `cache-${name}`) }));
      assert.equal(built.code, 0, built.stderr);
      return built.stdout.split(" ")[0];
    };
    assert.equal(
      await digestOf(join(dir, "node_modules", "ocify", "bin", "ocify.js"), "installed"),
      await digestOf(join(repoRoot, "bin", "ocify.js"), "checkout"),
    );

    writeFileSync(
      join(dir, "use.ts"),
      'import { build, type BuildOptions } from "ocify"; export const go = (o: BuildOptions) => build(o);\n',
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        // Every declaration file checked, ocify's included; no DOM types (ocify's own lib).
        compilerOptions: {
          module: "nodenext",
          target: "es2022",
          lib: ["es2022"],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
        },
        files: ["use.ts"],
      }),
    );
    const tsc = await run(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], dir);
    assert.equal(tsc.code, 0, `${tsc.stdout}${tsc.stderr}`);
  });

  it(`promises the Node it needs: installs on Node ${oldestNode}, is refused on an older one`, async () => {
    assert.ok(manifest.engines.node.startsWith(`^${oldestNode} `), manifest.engines.node);
    const oldest = await install("oldest-node", [], oldestNode);
    assert.equal(oldest.result.code, 0, oldest.result.stderr);
    assert.doesNotMatch(oldest.result.stderr.replace(/^npm warn cli .*$/gm, ""), engineComplaint, "no package of the tree refuses it");
    const older = await install("older-node", [], "20.14.0");
    assert.notEqual(older.result.code, 0, "engine-strict refuses it");
    assert.match(older.result.stderr, /EBADENGINE[\s\S]*ocify@/);
  });
});
