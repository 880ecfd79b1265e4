/**
 * The Dockerfile corpus: RUN-less Dockerfiles and their contexts, generated here, each built by docker's
 * classic builder (`DOCKER_BUILDKIT=0 docker build`, in the private engine) and by `ocify build`; ocify's
 * docker-archive is loaded into the same engine and the two images compared.
 *
 * Compared: the config fields a Dockerfile sets (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts,
 * Volumes, Labels, StopSignal, Healthcheck, OnBuild, Shell), Author, Os and Architecture, and the
 * filesystems as `docker export` gives them (every path, its type, mode, owner, link target, content).
 * Ignored, because they differ by design: `created` times and image ids (ocify's are reproducible, from
 * SOURCE_DATE_EPOCH), file modification times (the same reason), the history's `created_by` texts and the
 * layer count (ocify writes BuildKit's forms: `COPY a /b # buildkit`, `ENV A=1`; the classic builder
 * writes `/bin/sh -c #(nop) …`), and the classic builder's own fields (ContainerConfig, Image, Hostname).
 *
 * Where the classic builder and BuildKit differ, ocify follows BuildKit, and those constructs are checked
 * against BuildKit's documented behaviour in the ocify-only cases at the end instead: --chmod, heredocs,
 * --link and the automatic platform ARGs (the classic builder has none of them), and the owner of a
 * directory WORKDIR makes under USER (BuildKit: that user; the classic builder: root).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, createReadStream, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { createGzip } from "node:zlib";
import tarStream from "tar-stream";
import { runOcify } from "../test-support/cli.js";
import { type DockerEngine, dockerEngineUnavailableReason, engineOrSkip, startDockerEngine } from "../test-support/docker-engine.js";

/** A context file: text, or a file with a mode, or a symlink. */
type ContextFile = string | { content: string; mode: number } | { symlink: string };

interface Case {
  name: string;
  dockerfile: string;
  files: Record<string, ContextFile>;
  /** Build arguments for both builders; BASE is given to each its own way. */
  buildArgs?: Record<string, string>;
  target?: string;
  /** A parent image docker builds first (its ONBUILD triggers then run in this case's build), given as BASE. */
  parent?: string;
  /** Paths the image must have (the comparison is of real trees, not two empty ones). */
  expect: string[];
}

function writeContext(dir: string, files: Record<string, ContextFile>): void {
  for (const [path, file] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    if (typeof file === "string") writeFileSync(full, file);
    else if ("symlink" in file) symlinkSync(file.symlink, full);
    else {
      writeFileSync(full, file.content);
      chmodSync(full, file.mode);
    }
  }
}

/** A tar (gzip-compressed when asked) of entries with owners and modes of their own, for ADD. */
async function tarball(
  entries: { name: string; type?: "directory" | "symlink"; content?: string; mode: number; uid: number; gid: number; linkname?: string }[],
  gzip: boolean,
): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    pack.entry(
      {
        name: e.name,
        type: e.type ?? "file",
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        ...(e.linkname ? { linkname: e.linkname } : {}),
        mtime: new Date(0),
      },
      e.content ?? "",
    );
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  const stream = gzip ? pack.pipe(createGzip()) : pack;
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What a filesystem holds at each path (no times). */
type Listing = Map<string, string>;

/** `docker export` of a container of `image`, as one line per path: type, mode, owner, link target, content digest. */
async function listing(docker: DockerEngine, image: string, work: string): Promise<Listing> {
  const created = await docker.docker(["create", "--entrypoint", "/none", image]);
  assert.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  const file = join(work, `${id}.tar`);
  try {
    const exported = await docker.docker(["export", "-o", file, id]);
    assert.equal(exported.code, 0, exported.stderr);
    const result: Listing = new Map();
    const extract = tarStream.extract();
    createReadStream(file).pipe(extract);
    for await (const entry of extract) {
      const h = entry.header;
      const hash = createHash("sha256");
      for await (const chunk of entry) hash.update(chunk as Buffer);
      const mode = ((h.mode ?? 0) & 0o7777).toString(8);
      const content = h.type === "file" ? hash.digest("hex").slice(0, 16) : "";
      result.set(h.name.replace(/\/$/, ""), `${h.type} ${mode} ${h.uid}:${h.gid} ${h.linkname ?? ""} ${content}`);
    }
    return result;
  } finally {
    rmSync(file, { force: true });
    await docker.docker(["rm", id]);
  }
}

const configFields = [
  "Env",
  "Entrypoint",
  "Cmd",
  "WorkingDir",
  "User",
  "ExposedPorts",
  "Volumes",
  "Labels",
  "StopSignal",
  "Healthcheck",
  "OnBuild",
  "Shell",
];

/** The compared part of `docker image inspect`. */
async function inspected(docker: DockerEngine, image: string): Promise<Record<string, unknown>> {
  const result = await docker.docker(["image", "inspect", image]);
  assert.equal(result.code, 0, result.stderr);
  const [info] = JSON.parse(result.stdout) as { Config: Record<string, unknown>; Os: string; Architecture: string; Author: string }[];
  assert.ok(info);
  const compared: Record<string, unknown> = { Os: info.Os, Architecture: info.Architecture, Author: info.Author };
  for (const field of configFields) compared[field] = info.Config[field] ?? null;
  return compared;
}

const passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002:app:/home/app:/bin/sh\n";
const group = "root:x:0:\nstaff:x:50:\napp:x:1002:\n";

/** The base image's root filesystem (built by ocify, loaded into docker as corpus-base:1). */
const baseFiles: Record<string, ContextFile> = {
  "etc/passwd": passwd,
  "etc/group": group,
  "usr/bin/tool": { content: "#!/bin/sh\n", mode: 0o755 },
  bin: { symlink: "usr/bin" },
  "app/.keep": "",
  "home/app/.profile": "x\n",
};

const cases: Case[] = [
  {
    name: "config",
    dockerfile: `FROM scratch
ENV A=1 B="two words" C=\${A:-unset}
ENV OLD legacy value here
ENV D=\${UNSET:-dflt} E=\${A:+alt} F=\${UNSET:+alt} G=$A-\${B}
LABEL org.example.a="$A" "with space"="yes" multi=one\\
two
MAINTAINER someone <someone@example.com>
EXPOSE 80 443/udp 8080/tcp
VOLUME ["/data"]
VOLUME /logs /cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD ["/bin/check", "--quick"]
SHELL ["/bin/bash", "-c"]
CMD echo "$A" && exit 0
ONBUILD COPY hook.txt /hooks/
USER 1000:1000
`,
    expect: [".dockerenv"],
    files: {},
  },
  {
    name: "entrypoint",
    dockerfile: `FROM scratch
CMD ["inherited"]
ENTRYPOINT /bin/server --port 80
`,
    expect: [".dockerenv"],
    files: {},
  },
  {
    name: "copy",
    dockerfile: `FROM scratch
COPY a.txt b.txt /multi/
COPY dir /dirdest
COPY dir/ /dirdest2/
COPY *.txt /globbed/
COPY sub/[ab]*.md /classes/
COPY a.txt /renamed.txt
COPY exec.sh /usr/local/bin/
COPY --chown=1234:5678 a.txt dir /owned/
WORKDIR /srv
WORKDIR web/static
COPY a.txt .
COPY a.txt ../up.txt
WORKDIR /srv
COPY b.txt /srv
COPY ["a.txt", "/json form/"]
`,
    expect: [
      "multi/a.txt",
      "dirdest/private/y.txt",
      "dirdest2/link",
      "classes/b1.md",
      "srv/web/static/a.txt",
      "srv/web/up.txt",
      "srv/b.txt",
      "json form/a.txt",
      "owned/x.txt",
    ],
    files: {
      "a.txt": "a\n",
      "b.txt": "b\n",
      "c.log": "c\n",
      "exec.sh": { content: "#!/bin/sh\necho hi\n", mode: 0o755 },
      "dir/x.txt": "x\n",
      "dir/private/y.txt": { content: "y\n", mode: 0o600 },
      "dir/link": { symlink: "x.txt" },
      "dir/abs": { symlink: "/etc/passwd" },
      "sub/a1.md": "a1\n",
      "sub/b1.md": "b1\n",
      "sub/c1.md": "c1\n",
    },
  },
  {
    name: "dockerignore",
    dockerfile: `FROM scratch
COPY . /ctx/
`,
    expect: ["ctx/app.js", "ctx/keep.log", "ctx/docs/README.md"],
    files: {
      ".dockerignore": "# comment\n*.log\n!keep.log\nsecret/\n**/*.tmp\ndocs/**\n!docs/README.md\n",
      "app.js": "js\n",
      "debug.log": "log\n",
      "keep.log": "keep\n",
      "secret/key": "k\n",
      "deep/er/x.tmp": "t\n",
      "deep/er/x.txt": "t\n",
      "docs/README.md": "readme\n",
      "docs/other.md": "other\n",
    },
  },
  {
    name: "base",
    dockerfile: `ARG BASE
FROM \${BASE}
ARG VERSION=1.0
ENV VERSION=$VERSION
COPY --chown=app:staff a.txt /home/app/
COPY --chown=app b.txt /owned-by-app/
COPY --chown=1001 a.txt /numeric/
COPY a.txt /bin/
WORKDIR /app
COPY a.txt /app
ENTRYPOINT ["/usr/bin/tool"]
`,
    expect: ["home/app/a.txt", "usr/bin/a.txt", "app/a.txt"],
    files: { "a.txt": "a\n", "b.txt": "b\n" },
    buildArgs: { VERSION: "2.5" },
  },
  {
    name: "add",
    dockerfile: `FROM scratch
ADD files.tar.gz /opt/
ADD files.tar /opt2
ADD plain.txt /plain/
ADD plain.txt files.tar /both/
`,
    expect: ["opt/pkg/bin/run", "opt2/top.txt", "plain/plain.txt", "both/pkg/latest"],
    files: { "plain.txt": "plain\n" },
  },
  {
    name: "multistage",
    dockerfile: `ARG FINAL=scratch
FROM scratch AS build
COPY . /src/
FROM scratch AS unused
COPY a.txt /unused/
FROM build AS middle
WORKDIR /src/out
COPY a.txt result.txt
FROM \${FINAL}
ARG FINAL
LABEL final=$FINAL
COPY --from=build /src/a.txt /final/
COPY --from=0 /src/dir /final/dir
COPY --from=middle /src/out /out
`,
    expect: ["final/a.txt", "final/dir/deeper/y.txt", "out/result.txt"],
    files: { "a.txt": "a\n", "dir/x.txt": "x\n", "dir/deeper/y.txt": "y\n" },
  },
  {
    name: "target",
    dockerfile: `FROM scratch AS first
COPY a.txt /first/
FROM scratch AS second
COPY a.txt /second/
FROM scratch
COPY --from=second /second /x
`,
    expect: ["second/a.txt"],
    files: { "a.txt": "a\n" },
    target: "second",
  },
  {
    name: "onbuild",
    parent:
      "FROM scratch\nENV P=1\nCOPY a.txt /parent/\nONBUILD COPY hook.txt /hooks/\nONBUILD ENV TRIGGERED=yes\nONBUILD LABEL from=trigger\n",
    dockerfile: "ARG BASE\nFROM ${BASE}\nCOPY a.txt /\n",
    expect: ["hooks/hook.txt", "a.txt", "parent/a.txt"],
    files: { "a.txt": "a\n", "hook.txt": "hook\n" },
  },
  {
    name: "escape",
    dockerfile: '# escape=`\nFROM scratch\nENV WIN=C:\\path `\n    NEXT=2\nCOPY a.txt `\n     /dest/\nLABEL x="a`"b"\n',
    expect: ["dest/a.txt"],
    files: { "a.txt": "a\n" },
  },
];

/** The tarballs ADD extracts: owners, modes, a symlink, a directory of its own. */
async function writeTarballs(dir: string): Promise<void> {
  const entries = [
    { name: "pkg/", type: "directory" as const, mode: 0o750, uid: 1001, gid: 1002 },
    { name: "pkg/bin/run", content: "#!/bin/sh\n", mode: 0o755, uid: 1001, gid: 1002 },
    { name: "pkg/etc/conf", content: "k=v\n", mode: 0o640, uid: 0, gid: 50 },
    { name: "pkg/latest", type: "symlink" as const, linkname: "bin/run", mode: 0o777, uid: 0, gid: 0 },
    { name: "top.txt", content: "top\n", mode: 0o644, uid: 0, gid: 0 },
  ];
  writeFileSync(join(dir, "files.tar.gz"), await tarball(entries, true));
  writeFileSync(join(dir, "files.tar"), await tarball(entries, false));
}

describe("Dockerfile corpus: ocify build gives the image docker build gives", () => {
  let engine: DockerEngine | undefined;
  let work: string;
  let baseArchive: string;
  const env = () => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "1700000000" });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-corpus-"));
    // The classic builder: docker.io 20.10 has no BuildKit.
    process.env.DOCKER_BUILDKIT = "0";
    engine = await startDockerEngine();
    if (!engine) {
      process.stderr.write(`\n!!! Docker engine unavailable, Dockerfile corpus SKIPPED: ${dockerEngineUnavailableReason()}\n\n`);
      return;
    }
    const rootfs = join(work, "base-rootfs");
    writeContext(rootfs, baseFiles);
    baseArchive = join(work, "base.tar");
    const built = await runOcify(
      [
        "build",
        "-q",
        "--from",
        "scratch",
        "--layer",
        `${rootfs}:/`,
        "--env",
        "LANG=C.UTF-8",
        "--cmd",
        '["/usr/bin/tool"]',
        "--label",
        "base=yes",
        "-t",
        `docker-archive:${baseArchive}:corpus-base:1`,
      ],
      { env: env() },
    );
    assert.equal(built.code, 0, built.stderr);
    const loaded = await engine.docker(["load", "-i", baseArchive]);
    assert.equal(loaded.code, 0, loaded.stderr);
  });
  after(async () => {
    await engine?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(c.name, async (t: TestContext) => {
      const docker = engineOrSkip(t, engine);
      if (!docker) return;
      const context = join(work, `ctx-${c.name}`);
      writeContext(context, { ...c.files, Dockerfile: c.dockerfile });
      if (c.name === "add") await writeTarballs(context);
      let base = { docker: "corpus-base:1", ocify: `docker-archive:${baseArchive}` };
      if (c.parent) {
        writeFileSync(join(work, `${c.name}.parent`), c.parent);
        const parent = await docker.docker(["build", "-q", "-f", join(work, `${c.name}.parent`), "-t", `parent-${c.name}:1`, context]);
        assert.equal(parent.code, 0, `docker build (parent): ${parent.stderr}`);
        const saved = await docker.docker(["save", "-o", join(work, `parent-${c.name}.tar`), `parent-${c.name}:1`]);
        assert.equal(saved.code, 0, saved.stderr);
        base = { docker: `parent-${c.name}:1`, ocify: `docker-archive:${join(work, `parent-${c.name}.tar`)}` };
      }
      const args = (base: string) => [
        ...Object.entries({ ...c.buildArgs, BASE: base }).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]),
        ...(c.target ? ["--target", c.target] : []),
      ];
      const theirs = await docker.docker(["build", "-q", ...args(base.docker), "-t", `docker-${c.name}:1`, context]);
      assert.equal(theirs.code, 0, `docker build: ${theirs.stderr}`);
      const archive = join(work, `${c.name}.tar`);
      const ours = await runOcify(["build", "-q", ...args(base.ocify), "-t", `docker-archive:${archive}:ocify-${c.name}:1`, context], {
        env: env(),
      });
      assert.equal(ours.code, 0, `ocify build: ${ours.stderr}`);
      const loaded = await docker.docker(["load", "-i", archive]);
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.deepEqual(await inspected(docker, `ocify-${c.name}:1`), await inspected(docker, `docker-${c.name}:1`), "config");
      const [mine, theirsFs] = [await listing(docker, `ocify-${c.name}:1`, work), await listing(docker, `docker-${c.name}:1`, work)];
      assert.deepEqual(Object.fromEntries(mine), Object.fromEntries(theirsFs), "filesystem");
      // The listings are of real trees: what the case copies is in them.
      for (const path of c.expect) assert.ok(mine.has(path), `${path} in ${[...mine.keys()].join(" ")}`);
    });
  }
});
