import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ImageConfig } from "./image/config.js";
import { applyConfigEdits, parseCommand, parsePorts } from "./mutate.js";

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
    assert.throws(() => parsePorts(["70000"]), /`config.expose` 70000: not a port/);
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
