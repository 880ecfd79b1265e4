/**
 * Dockerfile builds where no docker is needed to judge: what BuildKit documents and the classic builder
 * lacks (--chmod, heredocs, automatic platform ARGs, WORKDIR owned by USER, several platforms), the
 * history docker would show, and the refusals (RUN, a remote ADD), each one line with nothing written.
 * The images are read back from the OCI layout with tar-stream, not with ocify's own reader.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import tarStream from "tar-stream";
import { buildDockerfile } from "../index.js";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

function blob(layout: string, digest: string): Buffer {
  return readFileSync(join(layout, "blobs", ...digest.split(":")));
}

async function entries(layer: Buffer): Promise<Map<string, Entry>> {
  const result = new Map<string, Entry>();
  const extract = tarStream.extract();
  Readable.from([gunzipSync(layer)]).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    result.set(h.name.replace(/\/$/, ""), {
      type: h.type ?? "file",
      mode: (h.mode ?? 0) & 0o7777,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      content: Buffer.concat(chunks).toString(),
    });
  }
  return result;
}

interface ReadImage {
  config: { architecture: string; config: Record<string, unknown>; history: { created_by: string; empty_layer?: boolean }[] };
  layers: Map<string, Entry>[];
}

async function readManifest(layout: string, digest: string): Promise<ReadImage> {
  const manifest = JSON.parse(blob(layout, digest).toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const config = JSON.parse(blob(layout, manifest.config.digest).toString()) as ReadImage["config"];
  return { config, layers: await Promise.all(manifest.layers.map((l) => entries(blob(layout, l.digest)))) };
}

function topDigest(layout: string): string {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  return (index.manifests[0] as { digest: string }).digest;
}

describe("buildDockerfile", () => {
  let work: string;
  const context = (name: string, files: Record<string, string>): string => {
    const dir = join(work, name);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    return dir;
  };
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-dockerfile-build-"));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("--chmod, heredocs, WORKDIR under USER and the history lines follow BuildKit", async () => {
    const dir = context("buildkit", {
      Dockerfile: `FROM scratch
ENV GREETING=hello
COPY --chmod=751 run.sh /app/
COPY <<EOF /etc/motd
$GREETING from a heredoc
EOF
USER 1234:99
WORKDIR /home/user/work
COPY --link run.sh /linked/
`,
      "run.sh": "#!/bin/sh\n",
    });
    const layout = join(work, "buildkit-out");
    await buildDockerfile({ context: dir, tags: [`oci:${layout}:v1`], cacheDir: join(work, "cache") });
    const image = await readManifest(layout, topDigest(layout));
    const [chmod, heredoc, workdir, linked] = image.layers as [
      Map<string, Entry>,
      Map<string, Entry>,
      Map<string, Entry>,
      Map<string, Entry>,
    ];
    assert.equal(image.layers.length, 4);
    assert.deepEqual(chmod.get("app/run.sh"), { type: "file", mode: 0o751, uid: 0, gid: 0, content: "#!/bin/sh\n" });
    assert.deepEqual(chmod.get("app"), { type: "directory", mode: 0o755, uid: 0, gid: 0, content: "" });
    assert.equal(heredoc.get("etc/motd")?.content, "hello from a heredoc\n");
    // BuildKit makes WORKDIR's directories as the current USER; the classic builder makes them root's.
    for (const path of ["home", "home/user", "home/user/work"])
      assert.deepEqual([workdir.get(path)?.uid, workdir.get(path)?.gid], [1234, 99], path);
    assert.ok(linked.has("linked/run.sh"));
    assert.deepEqual(
      image.config.history.map((h) => [h.created_by, h.empty_layer ?? false]),
      [
        ["ENV GREETING=hello", true],
        ["COPY --chmod=751 run.sh /app/ # buildkit", false],
        ["COPY <<EOF /etc/motd # buildkit", false],
        ["USER 1234:99", true],
        ["WORKDIR /home/user/work", false],
        ["COPY --link run.sh /linked/ # buildkit", false],
      ],
    );
    assert.equal(image.config.config.WorkingDir, "/home/user/work");
  });

  it("several platforms: one image each, TARGETARCH choosing its files, and an index over them", async () => {
    const dir = context("platforms", {
      Dockerfile: "FROM scratch\nARG TARGETARCH\nCOPY bin-${TARGETARCH} /app/bin\nLABEL arch=$TARGETARCH\n",
      "bin-amd64": "x86\n",
      "bin-arm64": "arm\n",
    });
    const layout = join(work, "platforms-out");
    await buildDockerfile({
      context: dir,
      platforms: [
        { os: "linux", architecture: "amd64" },
        { os: "linux", architecture: "arm64" },
      ],
      labels: { team: "core" },
      tags: [`oci:${layout}:v1`],
      cacheDir: join(work, "cache"),
    });
    const index = JSON.parse(blob(layout, topDigest(layout)).toString()) as {
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    assert.deepEqual(
      index.manifests.map((m) => m.platform.architecture),
      ["amd64", "arm64"],
    );
    for (const [i, arch, content] of [
      [0, "amd64", "x86\n"],
      [1, "arm64", "arm\n"],
    ] as const) {
      const image = await readManifest(layout, (index.manifests[i] as { digest: string }).digest);
      assert.equal(image.config.architecture, arch);
      assert.equal(image.layers[0]?.get("app/bin")?.content, content);
      assert.deepEqual(image.config.config.Labels, { arch, team: "core" });
    }
  });

  it("COPY --from an image of any transport, --chown by name through that stage's /etc/passwd and /etc/group", async () => {
    const rootfs = context("from-image-rootfs", {
      "etc/passwd": "root:x:0:0::/:/bin/sh\nsvc:x:700:701::/:/bin/sh\n",
      "etc/group": "root:x:0:\nops:x:702:\n",
      "opt/tool/bin": "tool\n",
    });
    const archive = join(work, "from-image.tar");
    const made = await runOcify(["build", "-q", "--from", "scratch", "--layer", `${rootfs}:/`, "-t", `docker-archive:${archive}:tools:1`], {
      env: { OCIFY_CACHE_DIR: join(work, "cache") },
    });
    assert.equal(made.code, 0, made.stderr);
    const dir = context("from-image", {
      Dockerfile: `ARG TOOLS=docker-archive:${archive}\nFROM \${TOOLS} AS base\nFROM base\nARG TOOLS\nCOPY --from=\${TOOLS} /opt/tool /copied/\nCOPY --chown=svc:ops a /owned/\nCOPY --chown=svc a /primary/\n`,
      a: "a\n",
    });
    const layout = join(work, "from-image-out");
    await buildDockerfile({ context: dir, tags: [`oci:${layout}:v1`], cacheDir: join(work, "cache") });
    const image = await readManifest(layout, topDigest(layout));
    const [copied, owned, primary] = image.layers.slice(1) as [Map<string, Entry>, Map<string, Entry>, Map<string, Entry>];
    assert.equal(copied.get("copied/bin")?.content, "tool\n");
    assert.deepEqual([owned.get("owned/a")?.uid, owned.get("owned/a")?.gid], [700, 702]);
    assert.deepEqual([primary.get("primary/a")?.uid, primary.get("primary/a")?.gid], [700, 701]);
  });

  it("RUN is refused with one line naming the file and line, exit 2, nothing written", async () => {
    const dir = context("run", { Dockerfile: "FROM scratch\nCOPY a /a\nRUN make\n", a: "a" });
    const out = join(work, "run-out");
    const result = await runOcify(["build", "-t", `oci:${out}:v1`, dir], { env: { OCIFY_CACHE_DIR: join(work, "cache") } });
    assertOneErrorLine(
      result,
      /^ocify: Dockerfile:3: RUN is not supported: .*\(build the artifacts before the image and COPY them/,
      "RUN",
      2,
    );
    assert.equal(existsSync(out), false);
  });

  it("ADD of a URL is refused with one line", async () => {
    const dir = context("url", { "Build.df": "FROM scratch\nADD https://example.invalid/x.tar /x/\n" });
    const out = join(work, "url-out");
    const result = await runOcify(["build", "-f", join(dir, "Build.df"), "-t", `oci:${out}:v1`, dir], {
      env: { OCIFY_CACHE_DIR: join(work, "cache") },
    });
    assertOneErrorLine(
      result,
      /:2: ADD https:\/\/example\.invalid\/x\.tar: remote sources are not fetched \(download it before the build/,
      "ADD URL",
      2,
    );
    assert.equal(existsSync(out), false);
  });

  it("a COPY source that is missing or ignored names its line; flag-build options are refused with a context", async () => {
    const dir = context("missing", {
      Dockerfile: "FROM scratch\n\nCOPY secret.txt /\n",
      "secret.txt": "s",
      ".dockerignore": "secret.txt\n",
    });
    const missing = await runOcify(["build", "-t", `oci:${join(work, "missing-out")}:v1`, dir], {
      env: { OCIFY_CACHE_DIR: join(work, "cache") },
    });
    assertOneErrorLine(
      missing,
      /^ocify: Dockerfile:3: COPY secret\.txt: not found in the build context \(check the path, and that \.dockerignore/,
      "missing",
      2,
    );
    const mixed = await runOcify(["build", "--from", "scratch", "-t", `oci:${join(work, "mixed-out")}:v1`, dir]);
    assertOneErrorLine(mixed, /^ocify: --from is for builds without a Dockerfile/, "mixed", 2);
  });
});
