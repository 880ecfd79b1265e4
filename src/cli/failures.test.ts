/**
 * Every way `build`, `copy` and `import` can fail against a real registry (a missing tag or platform, an
 * untrusted certificate, a refused connection, missing credentials) ends the same way: one `ocify:` line,
 * exit 1, nothing left behind, and no second report of the same failure (a promise rejected with no
 * handler, which the CLI reports as an internal error and runOcify turns into a test failure). Each with
 * the layers already in the cache (a build that has nothing to do but wait for the base) and without.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout, writeMultiArchLayout } from "../test-support/base-image.js";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";
import { freePort, pushOciLayout, startRegistry, startRegistryProxy, type TestRegistry } from "../test-support/registry.js";
import { makeTestCertificates } from "../test-support/tls.js";

describe("failures of build, copy and import: one line, exit 1, nothing left behind", () => {
  let work: string;
  let plain: TestRegistry;
  let tls: TestRegistry;
  let auth: TestRegistry;
  let closed: string;
  let app: string;
  let file: string;
  let runs = 0; // names every cache, destination and archive apart
  const warmCache = () => join(work, "warm-cache");
  const env = (cache: string): NodeJS.ProcessEnv => ({
    OCIFY_CACHE_DIR: cache,
    SOURCE_DATE_EPOCH: "1700000000",
    DOCKER_CONFIG: join(work, "no-credentials"),
    NODE_EXTRA_CA_CERTS: "",
  });
  const cacheFor = (cached: boolean) => (cached ? warmCache() : join(work, `cold-cache-${++runs}`));
  const layers = () => ["--layer", `${app}:/app`, "--layer", `${file}:/etc/motd`];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-fp-test-"));
    mkdirSync(join(work, "no-credentials"));
    [plain, auth] = await Promise.all([startRegistry(), startRegistry({ htpasswd: { username: "alice", password: "s3cret" } })]);
    const certificates = makeTestCertificates(work);
    tls = await startRegistry({ tls: { certificate: certificates.cert, key: certificates.key } });
    closed = `127.0.0.1:${await freePort()}`;
    writeBaseImageLayout(join(work, "single"), "latest");
    await pushOciLayout(join(work, "single"), "latest", `${plain.host}/base/single:1`);
    writeMultiArchLayout(join(work, "multi"), "latest");
    await pushOciLayout(join(work, "multi"), "latest", `${plain.host}/base/multi:1`, { all: true });
    app = join(work, "app");
    mkdirSync(join(app, "bin"), { recursive: true });
    writeFileSync(join(app, "bin", "server"), "#!/bin/sh\necho serving\n", { mode: 0o755 });
    writeFileSync(join(app, "index.html"), "<p>hello</p>\n");
    file = join(work, "motd");
    writeFileSync(file, "welcome\n");
    // The layers in the cache: a build on a good base, then a second that must find them unchanged.
    const good = ["build", "--from", `${plain.host}/base/single:1`, ...layers()];
    const first = await runOcify([...good, "-t", `${plain.host}/warm/app:1`], { env: env(warmCache()) });
    assert.equal(first.code, 0, first.stderr);
    const second = await runOcify([...good, "-t", `oci:${join(work, "warm-layout")}`], { env: env(warmCache()) });
    assert.equal(second.code, 0, second.stderr);
    assert.equal((second.stderr.match(/^build .*: unchanged$/gm) ?? []).length, 2, `both layers cached:\n${second.stderr}`);
  });
  after(async () => {
    await Promise.all([plain?.stop(), tls?.stop(), auth?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  /** Whether the test registry stores anything (a blob or a manifest) in `repository`. */
  const stored = (registry: TestRegistry, repository: string): string[] => {
    const dir = join(registry.dir, "data", "docker", "registry", "v2", "repositories", repository);
    return existsSync(dir) ? readdirSync(dir).filter((name) => name !== "_uploads") : [];
  };

  /** A registry repository and an OCI layout as destinations; returns how to check that neither holds anything. */
  const destinations = (name: string) => {
    const layout = join(work, `layout-${name}`);
    return {
      registry: { tag: `${plain.host}/out/${name}:1`, empty: () => assert.deepEqual(stored(plain, `out/${name}`), [], "nothing stored") },
      layout: { tag: `oci:${layout}:1`, empty: () => assert.ok(!existsSync(layout), "no layout left") },
    };
  };

  /** Bases that cannot be had: what is wrong, the arguments naming it, the error, and whether `copy` takes them too. */
  const badBases = () =>
    [
      ["a missing base tag", [`${plain.host}/base/single:nope`], /base\/single:nope: manifest unknown/, true],
      [
        "a platform the base's index lacks",
        [`${plain.host}/base/multi:1`, "--platform", "linux/riscv64"],
        /has no image for linux\/riscv64/,
        true,
      ],
      [
        "a platform the single-platform base lacks",
        [`${plain.host}/base/single:1`, "--platform", "linux/arm64"],
        /has no image for linux\/arm64/,
        false,
      ],
      [
        "two platforms from a single-platform base",
        [`${plain.host}/base/single:1`, "--platform", "linux/amd64,linux/arm64"],
        /has no image for linux\/arm64/,
        false,
      ],
      ["an untrusted TLS certificate", [`${tls.host}/base/single:1`], /TLS certificate not trusted/, true],
      ["a refused connection", [`${closed}/base/single:1`], /cannot reach .*connection refused/, true],
      ["a registry that wants credentials", [`${auth.host}/base/single:1`], /authentication required/, true],
    ] as const;
  const badRegistries = () =>
    [
      ["an untrusted TLS certificate", tls.host, /TLS certificate not trusted/],
      ["a refused connection", closed, /cannot reach .*connection refused/],
      ["a registry that wants credentials", auth.host, /authentication required/],
    ] as const;

  for (const cached of [true, false]) {
    const layerState = cached ? "with the layers cached" : "with nothing cached";

    it(`build: a base that cannot be had, ${layerState}`, async () => {
      for (const [what, [from, ...more], pattern] of badBases()) {
        for (const kind of ["registry", "layout"] as const) {
          const destination = destinations(`base-${++runs}`)[kind];
          const args = ["build", "--from", from, ...more, ...layers(), "-t", destination.tag];
          assertOneErrorLine(await runOcify(args, { env: env(cacheFor(cached)) }), pattern, `${what}, to a ${kind}`);
          destination.empty();
        }
      }
    });

    it(`build: a destination registry that cannot be written, ${layerState}`, async () => {
      for (const [what, host, pattern] of badRegistries()) {
        // The layout goes first: a later destination's failure must not leave it behind.
        const layout = destinations(`push-${++runs}`).layout;
        const args = ["build", "--from", "scratch", ...layers(), "-t", layout.tag, "-t", `${host}/out/app:1`];
        assertOneErrorLine(await runOcify(args, { env: env(cacheFor(cached)) }), pattern, what);
        layout.empty();
      }
    });

    it(`import: a destination registry that cannot be written, ${layerState}`, async () => {
      for (const [what, host, pattern] of badRegistries()) {
        const args = ["import", app, "-t", `${host}/out/rootfs:1`];
        assertOneErrorLine(await runOcify(args, { env: env(cacheFor(cached)) }), pattern, what);
      }
    });
  }

  it("build, import and copy: a destination that cannot be written where it points is a usage error, before any work", async () => {
    const proxy = await startRegistryProxy(plain.host);
    try {
      const directory = join(work, "a-directory");
      mkdirSync(directory);
      const notADirectory = join(work, "a-file");
      writeFileSync(notADirectory, "mine\n");
      const full = join(work, "full-directory");
      mkdirSync(full);
      writeFileSync(join(full, "notes.txt"), "mine\n");
      const cases: [string, RegExp][] = [
        [`oci-archive:${directory}`, /a-directory is a directory, not an archive file \(name a file, e\.g\. .*image\.tar/],
        [`docker-archive:${directory}:app:1`, /a-directory is a directory, not an archive file/],
        [`docker-archive:${join(work, "no", "such", "app.tar")}`, /directory .*no\/such does not exist \(create it first\)/],
        [`oci-archive:${join(notADirectory, "app.tar")}`, /a-file is not a directory/],
        ["docker-archive:/dev/null", /\/dev\/null is not a regular file/],
        [`docker-archive:${join(work, "app.tar")}:@0`, /@index selects an image to read/],
        [`oci:${notADirectory}`, /a-file is not a directory \(an OCI layout is a directory; for a tar file use oci-archive:\)/],
        [`oci:${join(notADirectory, "deeper", "layout")}`, /a-file is not a directory/],
        [`oci:${full}`, /full-directory is not empty and not an OCI layout/],
      ];
      const cache = cacheFor(false);
      for (const [i, [tag, pattern]] of cases.entries()) {
        const commands = [["build", "--from", `${proxy.host}/base/single:1`, ...layers(), "-t", `${plain.host}/out/first:1`, "-t", tag]];
        // import and copy check their destination the same way: a few cases are enough to show they do.
        if (i < 3) commands.push(["import", app, "-t", tag], ["copy", `${proxy.host}/base/single:1`, tag]);
        for (const args of commands) {
          assertOneErrorLine(await runOcify(args, { env: env(cache) }), pattern, `${args[0]} -t ${tag}`, 2);
        }
      }
      assert.deepEqual(proxy.requests, [], "nothing asked of the registry");
      assert.deepEqual(stored(plain, "out/first"), [], "nothing pushed to the other destination");
      assert.ok(!existsSync(join(cache, "layers")), "no layer built");
      assert.deepEqual(readdirSync(directory), [], "the directory is untouched");
      assert.deepEqual(readdirSync(full), ["notes.txt"]);
      assert.deepEqual(
        readdirSync(work).filter((name) => name.endsWith(".tmp")),
        [],
        "no temp file",
      );
    } finally {
      await proxy.stop();
    }
  });

  it("copy: a source that cannot be had, to a registry, an OCI layout and an archive", async () => {
    for (const [what, from, pattern, copies] of badBases()) {
      if (!copies) continue;
      for (const kind of ["registry", "layout"] as const) {
        const destination = destinations(`copy-${++runs}`)[kind];
        const result = await runOcify(["copy", ...from.slice(1), from[0], destination.tag], { env: env(cacheFor(false)) });
        assertOneErrorLine(result, pattern, `${what}, to a ${kind}`);
        destination.empty();
      }
      const archive = `copy-${runs}.tar`;
      const result = await runOcify(["copy", ...from.slice(1), from[0], `oci-archive:${join(work, archive)}`], {
        env: env(cacheFor(false)),
      });
      assertOneErrorLine(result, pattern, `${what}, to an archive`);
      assert.deepEqual(
        readdirSync(work).filter((name) => name.includes(archive)),
        [],
        "no archive or temp file left",
      );
    }
  });

  it("copy: a destination registry that cannot be written", async () => {
    for (const [what, host, pattern] of badRegistries()) {
      const result = await runOcify(["copy", `${plain.host}/base/single:1`, `${host}/out/copy:1`], { env: env(cacheFor(false)) });
      assertOneErrorLine(result, pattern, what);
    }
  });
});
