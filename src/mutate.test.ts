import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImageConfig } from "./image/config.js";
import { applyConfigEdits, baseAnnotations, createdTimestamp, emptyConfig, mutateConfig, parseCommand, parsePorts } from "./mutate.js";
import { parseTransportReference } from "./transport/transport.js";

const base: ImageConfig = {
  architecture: "amd64",
  os: "linux",
  created: "2024-01-01T00:00:00Z",
  config: { Env: ["PATH=/usr/bin:/bin", "LANG=C"], Cmd: ["/bin/sh"], Labels: { a: "1" } },
  rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] },
  history: [{ created_by: "base" }],
  container_config: { Hostname: "x" },
  "moby.buildkit.buildinfo.v1": "kept",
};

describe("config edits", () => {
  it("replaces env keys and keeps the others (the base PATH)", () => {
    const config = applyConfigEdits(base.config, { env: ["LANG=C.UTF-8", "MODE=prod"] });
    assert.deepEqual(config.Env, ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "MODE=prod"]);
    assert.deepEqual(base.config?.Env, ["PATH=/usr/bin:/bin", "LANG=C"], "base not changed");
  });
  it("drops the base CMD when only an entrypoint is set, as a Dockerfile does", () => {
    assert.equal(applyConfigEdits(base.config, { entrypoint: ["/app/server"] }).Cmd, undefined);
    assert.deepEqual(applyConfigEdits(base.config, { entrypoint: ["/app/server"], cmd: ["--port", "8080"] }).Cmd, ["--port", "8080"]);
    assert.deepEqual(applyConfigEdits(base.config, { cmd: ["x"] }).Cmd, ["x"]);
  });
  it("sets ports, volumes, labels, workdir, user", () => {
    const config = applyConfigEdits(base.config, {
      expose: ["8080/tcp", "53/udp", "9000-9001"],
      volumes: ["/data"],
      labels: { "org.example.team": "core" },
      workdir: "/app",
      user: "1000:1000",
    });
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ["8080/tcp", "53/udp", "9000/tcp", "9001/tcp"]);
    assert.deepEqual(config.Volumes, { "/data": {} });
    assert.deepEqual(config.Labels, { a: "1", "org.example.team": "core" });
    assert.equal(config.WorkingDir, "/app");
    assert.equal(config.User, "1000:1000");
  });
  it("rejects bad values with one-line usage errors", () => {
    assert.throws(() => parsePorts(["70000"]), /--expose 70000: not a port/);
    assert.throws(() => parsePorts(["http"]), /not a port/);
    assert.throws(() => applyConfigEdits({}, { workdir: "app" }), /absolute/);
    assert.throws(() => applyConfigEdits({}, { env: ["NOVALUE"] }), /KEY=VALUE/);
    assert.throws(() => parseCommand('["a", 1]', "--cmd"), /array of strings/);
    assert.throws(() => parseCommand("[oops", "--cmd"), /not a valid JSON array/);
  });
  it("parses exec-form JSON and plain strings", () => {
    assert.deepEqual(parseCommand('["/app/server","--port","8080"]', "--entrypoint"), ["/app/server", "--port", "8080"]);
    assert.deepEqual(parseCommand("/app/server --port 8080", "--entrypoint"), ["/app/server", "--port", "8080"]);
    assert.equal(parseCommand("", "--entrypoint"), null);
  });
});

describe("mutateConfig", () => {
  it("appends diff_ids and history, sets created, keeps unknown fields", () => {
    const created = createdTimestamp(1700000000);
    const diffID = `sha256:${"2".repeat(64)}` as const;
    const config = mutateConfig(base, { user: "1" }, [{ diffID, createdBy: "ocify layer ./out:/app" }], created);
    assert.equal(created, "2023-11-14T22:13:20Z");
    assert.equal(config.created, created);
    assert.deepEqual(config.rootfs.diff_ids, [...base.rootfs.diff_ids, diffID]);
    assert.equal(config.history?.length, 2);
    assert.equal(config.history?.[1]?.created_by, "ocify layer ./out:/app");
    assert.equal(config["moby.buildkit.buildinfo.v1"], "kept");
    assert.deepEqual(config.container_config, { Hostname: "x" }, "a field the legacy builder wrote is the base's, kept");
    assert.equal(base.rootfs.diff_ids.length, 1);
  });
  it("defaults created to the epoch and builds a scratch config", () => {
    assert.equal(createdTimestamp(undefined), "1970-01-01T00:00:00Z");
    const scratch = emptyConfig({ os: "linux", architecture: "arm64", variant: "v8" });
    assert.equal(scratch.variant, "v8");
    assert.deepEqual(scratch.rootfs.diff_ids, []);
  });
});

describe("baseAnnotations", () => {
  const digest = `sha256:${"3".repeat(64)}`;
  const annotations = (from: string) => baseAnnotations(parseTransportReference(from), digest);

  it("names a registry base by its full reference, however it was written", () => {
    const full = { "org.opencontainers.image.base.name": "docker.io/library/alpine:3.20", "org.opencontainers.image.base.digest": digest };
    assert.deepEqual(annotations("alpine:3.20"), full);
    assert.deepEqual(annotations("docker://docker.io/library/alpine:3.20"), full);
    assert.equal(annotations("127.0.0.1:5000/team/base:1")["org.opencontainers.image.base.name"], "127.0.0.1:5000/team/base:1");
  });

  it("gives a base read from a path only its digest: the path is this machine's", () => {
    for (const from of ["oci:/home/me/layouts/base:1", "oci:./base", "oci-archive:/tmp/base.tar:1", "docker-archive:/srv/base.tar"]) {
      assert.deepEqual(annotations(from), { "org.opencontainers.image.base.digest": digest }, from);
    }
    assert.equal(
      annotations("docker-archive:/srv/base.tar:team/base:1")["org.opencontainers.image.base.name"],
      "docker.io/team/base:1",
      "the name a docker-archive gives its image is a reference",
    );
  });
});
