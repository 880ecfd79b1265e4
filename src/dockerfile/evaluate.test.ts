import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImageConfig } from "../image/config.js";
import { evaluateStage, type LayerStep, parseDuration, type StageBuilder } from "./evaluate.js";
import { type DockerfileError, parseDockerfile } from "./parser.js";
import { type DockerfileOptions, planDockerfile } from "./stages.js";

function options(overrides: Partial<DockerfileOptions> = {}): DockerfileOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    buildArgs: new Map(),
    platform: { os: "linux", architecture: "arm64", variant: "v8" },
    buildPlatform: { os: "linux", architecture: "amd64" },
    warn: (m) => warnings.push(m),
    warnings,
    ...overrides,
  };
}

const baseConfig: ImageConfig = {
  architecture: "arm64",
  os: "linux",
  config: { Env: ["PATH=/usr/bin", "HOME=/root"], Cmd: ["/bin/sh"], Labels: { base: "yes" } },
  rootfs: { type: "layers", diff_ids: [] },
};

/** A builder that records what the evaluator asks for, with a small /etc/passwd and /etc/group. */
function recorder() {
  const layers: LayerStep[] = [];
  const history: string[] = [];
  const builder: StageBuilder = {
    async addLayer(step) {
      layers.push(step);
      history.push(step.createdBy);
    },
    addHistory(createdBy) {
      history.push(createdBy);
    },
    async lookupUser(name) {
      return name === "app" ? { uid: 1000, gid: 1001 } : undefined;
    },
    async lookupGroup(name) {
      return name === "staff" ? 50 : undefined;
    },
  };
  return { builder, layers, history };
}

async function run(text: string, opts = options(), base = baseConfig) {
  const plan = planDockerfile(parseDockerfile(text), opts);
  const stage = plan.stages[plan.target];
  assert.ok(stage);
  const rec = recorder();
  const result = await evaluateStage(plan, stage, base, rec.builder, opts);
  return { ...result, ...rec, plan };
}

describe("evaluateStage", () => {
  it("expands ENV values with the variables as they were before the instruction", async () => {
    const { config } = await run("FROM a\nENV A=hello\nENV A=bye B=$A C=${PATH}:/x\nENV D ${A} and ${B}\n");
    assert.deepEqual(config.Env, ["PATH=/usr/bin", "HOME=/root", "A=bye", "B=hello", "C=/usr/bin:/x", "D=bye and hello"]);
  });

  it("scopes ARGs: global ones for FROM, redeclared in a stage, build args winning, ENV over ARG", async () => {
    const opts = options({ buildArgs: new Map([["V", "given"]]) });
    const { config, plan } = await run(
      "ARG TAG=1.0\nARG V=default\nFROM img:${TAG}\nARG TAG\nARG V\nARG W=$TAG-w\nENV W=env\nLABEL tag=$TAG v=$V w=$W\n",
      opts,
    );
    assert.deepEqual(plan.stages[0]?.base, { kind: "image", reference: "img:1.0", platform: undefined });
    assert.deepEqual(config.Labels, { base: "yes", tag: "1.0", v: "given", w: "env" });
    assert.equal(
      config.Env?.some((e) => e.startsWith("TAG=")),
      false,
      "ARG values are not kept in the image",
    );
  });

  it("makes the platform arguments available to FROM, and in a stage once declared", async () => {
    const { config, plan } = await run(
      "FROM --platform=$BUILDPLATFORM img:$TARGETARCH\nARG TARGETPLATFORM\nLABEL t=$TARGETPLATFORM a=$TARGETARCH\n",
    );
    assert.deepEqual(plan.stages[0]?.base, { kind: "image", reference: "img:arm64", platform: { os: "linux", architecture: "amd64" } });
    assert.deepEqual(config.Labels, { base: "yes", t: "linux/arm64/v8", a: "" });
  });

  it("drops an inherited CMD on ENTRYPOINT, but keeps a CMD the stage set first", async () => {
    const inherited = await run('FROM a\nENTRYPOINT ["/app"]\n');
    assert.deepEqual([inherited.config.Entrypoint, inherited.config.Cmd], [["/app"], null]);
    const own = await run('FROM a\nCMD ["--flag"]\nENTRYPOINT ["/app"]\n');
    assert.deepEqual([own.config.Entrypoint, own.config.Cmd], [["/app"], ["--flag"]]);
  });

  it("wraps shell forms in the current SHELL", async () => {
    const { config, history } = await run('FROM a\nCMD echo "$HOME"\nSHELL ["/bin/bash", "-ec"]\nENTRYPOINT exec server\n');
    assert.deepEqual(config.Cmd, ["/bin/sh", "-c", 'echo "$HOME"'], "a CMD of this stage stays");
    assert.deepEqual(config.Entrypoint, ["/bin/bash", "-ec", "exec server"]);
    assert.deepEqual(config.Shell, ["/bin/bash", "-ec"]);
    assert.equal(history[0], 'CMD ["/bin/sh" "-c" "echo \\"$HOME\\""]');
  });

  it("resolves WORKDIR against the previous one and creates it as a layer", async () => {
    const { config, layers } = await run("FROM a\nWORKDIR /srv\nWORKDIR app/../data/.\nENV D=/x\nWORKDIR $D\n");
    assert.equal(config.WorkingDir, "/x");
    assert.deepEqual(
      layers.map((l) => l.kind === "workdir" && l.path),
      ["/srv", "/srv/data", "/x"],
    );
  });

  it("describes COPY and ADD for the builder: sources expanded, destination resolved, owner looked up", async () => {
    const { layers } = await run(
      "FROM a AS one\nFROM a\nWORKDIR /w\nARG F=file.txt\nCOPY --chown=app:staff --chmod=640 $F dir/ ./\nCOPY --from=one /x rel\nCOPY --from=other:1 /y /abs/\nADD --chown=7 x.tar /opt/\n",
    );
    const copies = layers.filter((l) => l.kind === "copy");
    assert.deepEqual(
      copies.map((c) => c.kind === "copy" && [c.from, c.sources, c.dest, c.chown, c.chmod, c.add]),
      [
        [{ kind: "context" }, ["file.txt", "dir/"], "/w/", { uid: 1000, gid: 50 }, 0o640, false],
        [{ kind: "stage", index: 0 }, ["/x"], "/w/rel", undefined, undefined, false],
        [{ kind: "image", reference: "other:1" }, ["/y"], "/abs/", undefined, undefined, false],
        [{ kind: "context" }, ["x.tar"], "/opt/", { uid: 7, gid: 7 }, undefined, true],
      ],
    );
    assert.equal(copies[0]?.createdBy, "COPY --chown=app:staff --chmod=640 $F dir/ ./ # buildkit");
  });

  it("takes a named user's primary group when --chown names no group", async () => {
    const { layers } = await run("FROM a\nCOPY --chown=app x /x\n");
    assert.deepEqual(layers[0]?.chown, { uid: 1000, gid: 1001 });
  });

  it("refuses unknown owner names and bad modes with the line", async () => {
    await assert.rejects(
      run("FROM a\nCOPY --chown=nobody x /x\n"),
      /Dockerfile:2: --chown nobody: no user "nobody" in the stage's \/etc\/passwd/,
    );
    await assert.rejects(run("FROM a\nCOPY --chown=app:nogroup x /x\n"), /no group "nogroup"/);
    await assert.rejects(run("FROM a\nCOPY --chmod=u+x x /x\n"), /not an octal mode/);
  });

  it("reads heredocs as inline files, expanded unless the name was quoted", async () => {
    const { layers } = await run("FROM a\nENV WHO=world\nCOPY <<hello <<'raw' /etc/\nhi $WHO\nhello\nkeep $WHO\nraw\n");
    const copy = layers[0];
    assert.ok(copy?.kind === "copy");
    assert.deepEqual(copy.sources, []);
    assert.deepEqual(copy.inline, [
      { name: "hello", content: "hi world\n" },
      { name: "raw", content: "keep $WHO\n" },
    ]);
  });

  it("sets labels, ports, volumes, user, stop signal, healthcheck and ONBUILD", async () => {
    const text = [
      "FROM a",
      "ENV P=9000",
      'LABEL "a b"="c d" e=f',
      "EXPOSE 80 $P/udp 8000-8001",
      'VOLUME ["/data", "/logs"]',
      "VOLUME /cache",
      "USER app:staff",
      "STOPSIGNAL SIGQUIT",
      "HEALTHCHECK --interval=1m30s --timeout=5s --retries=3 CMD curl -f http://localhost/",
      "ONBUILD COPY . /app",
      "MAINTAINER someone",
    ].join("\n");
    const { config, author } = await run(text);
    assert.deepEqual(config.Labels, { base: "yes", "a b": "c d", e: "f" });
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}).sort(), ["80/tcp", "8000/tcp", "8001/tcp", "9000/udp"]);
    assert.deepEqual(Object.keys(config.Volumes ?? {}), ["/data", "/logs", "/cache"]);
    assert.equal(config.User, "app:staff");
    assert.equal(config.StopSignal, "SIGQUIT");
    assert.deepEqual(config.Healthcheck, { Test: ["CMD-SHELL", "curl -f http://localhost/"], Interval: 90e9, Timeout: 5e9, Retries: 3 });
    assert.deepEqual(config.OnBuild, ["COPY . /app"]);
    assert.equal(author, "someone");
  });

  it("gives a stage whose base has no PATH the usual one", async () => {
    const { config } = await run("FROM scratch\nENV A=1\n", options(), { ...baseConfig, config: {} });
    assert.deepEqual(config.Env, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"]);
  });

  it("applies a base image's ONBUILD triggers first, and does not pass them on", async () => {
    const base: ImageConfig = { ...baseConfig, config: { ...baseConfig.config, OnBuild: ["ENV FROM_BASE=1", "COPY . /app/"] } };
    const { config, layers } = await run("FROM a\nENV MINE=2\n", options(), base);
    assert.deepEqual(config.Env?.slice(-2), ["FROM_BASE=1", "MINE=2"]);
    assert.equal(layers[0]?.kind === "copy" && layers[0].dest, "/app/");
    assert.equal(config.OnBuild, undefined);
    await assert.rejects(run("FROM a\n", options(), { ...baseConfig, config: { OnBuild: ["RUN make"] } }), /RUN is not supported/);
  });

  it("refuses RUN with the line and what to do, or skips it with a warning when asked", async () => {
    await assert.rejects(run("FROM a\n\nRUN make\n"), (error: DockerfileError) => {
      assert.match(error.userMessage, /^Dockerfile:3: RUN is not supported.*\(build the artifacts before the image and COPY them/);
      return true;
    });
    const opts = options({ skipRun: true });
    await run("FROM a\nRUN apt-get update\n", opts);
    assert.match(opts.warnings[0] ?? "", /Dockerfile:2: RUN skipped/);
  });

  it("refuses remote ADD sources and bad values", async () => {
    await assert.rejects(run("FROM a\nADD https://example.invalid/x /x\n"), /remote sources are not fetched/);
    await assert.rejects(run("FROM a\nSTOPSIGNAL NOPE\n"), /not a signal/);
    await assert.rejects(run("FROM a\nEXPOSE 99999\n"), /EXPOSE: 99999: not a port/);
    await assert.rejects(run("FROM a\nHEALTHCHECK --interval=5 CMD x\n"), /not a duration/);
  });
});

describe("planDockerfile", () => {
  const text =
    "FROM base AS deps\nFROM deps AS build\nCOPY x /x\nFROM scratch AS unused\nFROM alpine AS final\nCOPY --from=build /x /x\nCOPY --from=1 /y /y\n";

  it("builds the target and what it depends on, dependencies first", () => {
    const plan = planDockerfile(parseDockerfile(text), options());
    assert.equal(plan.target, 3);
    assert.deepEqual(plan.order, [0, 1, 3]);
    assert.deepEqual(plan.stages[1]?.base, { kind: "stage", index: 0 });
    assert.deepEqual(plan.stages[2]?.base, { kind: "scratch" });
  });

  it("takes --target by name", () => {
    const plan = planDockerfile(parseDockerfile(text), options({ target: "BUILD" }));
    assert.deepEqual([plan.target, plan.order], [1, [0, 1]]);
    assert.throws(
      () => planDockerfile(parseDockerfile(text), options({ target: "nope" })),
      (error: DockerfileError) => /no stage named "nope" \(the stages are: deps, build, unused, final\)/.test(error.userMessage),
    );
  });

  it("allows COPY --from a later stage, refuses cycles, duplicate names and instructions before FROM", () => {
    const forward = planDockerfile(
      parseDockerfile("FROM a AS first\nCOPY --from=later /x /x\nFROM b AS later\nFROM c\nCOPY --from=first /x /x\n"),
      options(),
    );
    assert.deepEqual(forward.order, [1, 0, 2]);
    assert.throws(
      () => planDockerfile(parseDockerfile("FROM a AS x\nCOPY --from=y /x /x\nFROM b AS y\nCOPY --from=x /x /x\n"), options()),
      /in a circle/,
    );
    assert.throws(() => planDockerfile(parseDockerfile("FROM a AS x\nCOPY --from=x /x /x\n"), options()), /names the stage it is in/);
    assert.throws(() => planDockerfile(parseDockerfile("FROM a AS x\nFROM b AS x\n"), options()), /used twice/);
    assert.throws(() => planDockerfile(parseDockerfile("ENV A=1\nFROM a\n"), options()), /ENV before the first FROM/);
    assert.throws(() => planDockerfile(parseDockerfile("# only a comment\n"), options()), /no FROM instruction/);
  });

  it("warns about build arguments no ARG declares", () => {
    const opts = options({
      buildArgs: new Map([
        ["USED", "1"],
        ["UNUSED", "2"],
        ["HTTP_PROXY", "x"],
      ]),
    });
    planDockerfile(parseDockerfile("FROM a\nARG USED\n"), opts);
    assert.deepEqual(opts.warnings, ["the build arguments UNUSED were not used (no ARG declares them)"]);
  });
});

describe("parseDuration", () => {
  it("reads Go durations", () => {
    assert.equal(parseDuration("1m30s"), 90e9);
    assert.equal(parseDuration("1.5s"), 1.5e9);
    assert.equal(parseDuration("250ms"), 250e6);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration("5"), undefined);
    assert.equal(parseDuration("5x"), undefined);
  });
});
