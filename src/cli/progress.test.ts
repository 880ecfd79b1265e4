/**
 * What progress says about each blob at each destination: "already present" only for what the destination
 * had before the run; what the run pushed is done, mounted or pushed (another tag of the same repository),
 * once per destination however many platforms share it; on a terminal, with several destinations, every
 * row names its destination.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeMultiArchLayout } from "../test-support/base-image.js";
import { ocifyBin, runOcify, runOk } from "../test-support/cli.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";

/** `kind digest → destination` → what the progress lines said of it, in order. */
function blobLines(stderr: string): Map<string, string[]> {
  const said = new Map<string, string[]>();
  for (const match of stderr.matchAll(/^(layer|config|base layer) ([0-9a-f]{12}): (.+) → (.+)$/gm)) {
    const key = `${match[1]} ${match[2]} → ${match[4]}`;
    said.set(key, [...(said.get(key) ?? []), match[3] as string]);
  }
  return said;
}

describe("progress of a push", () => {
  let work: string;
  let registry: TestRegistry;
  let app: string;
  let caches = 0;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, `cache-${++caches}`), SOURCE_DATE_EPOCH: "0" });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-progress-test-"));
    registry = await startRegistry();
    writeMultiArchLayout(join(work, "multi"), "latest");
    await pushOciLayout(join(work, "multi"), "latest", `${registry.host}/base/multi:1`, { all: true });
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "hello.txt"), "hello\n");
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("says 'already present' only for blobs a destination had before the run", async () => {
    const [first, second, other] = ["app:1", "app:latest", "other:1"].map((name) => `${registry.host}/progress/${name}`) as [
      string,
      string,
      string,
    ];
    const layout = `oci:${join(work, "layout")}`;
    const cold = env();
    const pushed = await runOcify(
      ["build", "--from", "scratch", "--layer", `${app}:/app`, "-t", first, "-t", second, "-t", other, "-t", layout],
      {
        env: cold,
      },
    );
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.doesNotMatch(pushed.stderr, /already present/, pushed.stderr);
    const said = blobLines(pushed.stderr);
    const layer = [...said.keys()].find((key) => key.startsWith("layer "))?.split(" → ")[0] as string;
    const config = [...said.keys()].find((key) => key.startsWith("config "))?.split(" → ")[0] as string;
    assert.match(said.get(`${layer} → ${first}`)?.join("|") ?? "", /^done \(\d+ B\)$/, "uploaded while it was built");
    assert.deepEqual(said.get(`${layer} → ${second}`), ["pushed"], "the same repository, another tag");
    assert.deepEqual(said.get(`${layer} → ${other}`), ["mounted"], "mounted from where this run pushed it");
    assert.match(said.get(`${layer} → ${layout}`)?.join("|") ?? "", /^done \(\d+ B\)$/);
    assert.match(said.get(`${config} → ${first}`)?.join("|") ?? "", /^done \(\d+ B\)$/);
    assert.deepEqual(said.get(`${config} → ${second}`), ["pushed"]);
    assert.equal(said.size, 8, `one line per blob and destination:\n${pushed.stderr}`);

    // Again: the registry has every blob from before this run now.
    const again = await runOcify(["build", "--from", "scratch", "--layer", `${app}:/app`, "-t", first, "-t", second], { env: cold });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /^build .*app: unchanged$/m);
    const present = blobLines(again.stderr);
    assert.deepEqual([...present.values()], [["already present"], ["already present"], ["already present"], ["already present"]]);
  });

  it("reports a layer shared by several platforms once per destination, as pushed by the run", async () => {
    const target = `${registry.host}/progress/multi:1`;
    const result = await runOcify(
      ["build", "--from", `${registry.host}/base/multi:1`, "--platform", "linux/amd64,linux/arm64", "--layer", `${app}:/app`, "-t", target],
      { env: env() },
    );
    assert.equal(result.code, 0, result.stderr);
    const said = blobLines(result.stderr);
    const layers = [...said].filter(([key]) => key.startsWith("layer "));
    assert.equal(layers.length, 1, result.stderr);
    assert.match(layers[0]?.[1].join("|") ?? "", /^done \(\d+ B\)$/, result.stderr);
    assert.equal([...said.keys()].filter((key) => key.startsWith("base layer ")).length, 2, "a base layer per platform");
    assert.equal([...said.keys()].filter((key) => key.startsWith("config ")).length, 2, "a config per platform");
    assert.doesNotMatch(result.stderr, /already present/);
  });

  /** ocify's output on a terminal (a pseudo-terminal from script(1), 200 columns): the rows as last drawn. */
  const onTerminal = async (args: string[]): Promise<string[]> => {
    const quoted = [process.execPath, ocifyBin, ...args].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
    const output = await runOk("script", ["-qec", `stty cols 200; exec ${quoted}`, "/dev/null"], { env: env() });
    const last = output.split(/\x1b\[\d+A/).at(-1) as string;
    return last
      .split(/\r?\n/)
      .map((line) => line.replaceAll("\x1b[2K", "").trim())
      .filter((line) => /^(layer|config|manifest|base layer) /.test(line));
  };

  it("names each row's destination on a terminal when there are several", async () => {
    const targets = ["tty/app:1", "tty/app:2"].map((name) => `${registry.host}/${name}`);
    const rows = await onTerminal(["build", "--from", "scratch", "--layer", `${app}:/app`, ...targets.flatMap((t) => ["-t", t])]);
    assert.equal(rows.length, 6, `a layer, a config and a manifest for each destination:\n${rows.join("\n")}`);
    for (const target of targets) {
      assert.equal(rows.filter((row) => row.includes(` → ${target}: `)).length, 3, `three rows for ${target}:\n${rows.join("\n")}`);
    }
    const single = await onTerminal(["build", "--from", "scratch", "--layer", `${app}:/app`, "-t", `${registry.host}/tty/app:3`]);
    assert.equal(single.length, 3, single.join("\n"));
    assert.ok(
      single.every((row) => !row.includes("→")),
      `one destination needs no name:\n${single.join("\n")}`,
    );
  });
});
