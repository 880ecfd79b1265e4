/**
 * Credentials where users keep them, through the CLI against docker-registry with htpasswd: docker's
 * credential helpers (credsStore, credHelpers), containers' auth.json without any docker config (with a
 * namespace entry), and --creds / --password-stdin. Secrets never appear in ocify's output.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { writeCredentialHelper } from "../test-support/credential-helper.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";

const username = "alice";
const password = "helper-s3cret";
const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("credentials from helpers, auth.json and flags", () => {
  let registry: TestRegistry;
  let work: string;
  let files: string;
  let n = 0;

  before(async () => {
    registry = await startRegistry({ htpasswd: { username, password } });
    work = mkdtempSync(join(tmpdir(), "ocify-creds-cli-"));
    files = join(work, "files");
    mkdirSync(files);
    writeFileSync(join(files, "a.txt"), "credentials\n");
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** A fresh HOME with nothing in it, and the environment pointing only where the test says. */
  function home(): { dir: string; env: NodeJS.ProcessEnv } {
    const dir = join(work, `home-${++n}`);
    mkdirSync(dir);
    return {
      dir,
      env: {
        HOME: dir,
        DOCKER_CONFIG: join(dir, ".docker"),
        XDG_CONFIG_HOME: join(dir, ".config"),
        XDG_RUNTIME_DIR: "",
        REGISTRY_AUTH_FILE: "",
        OCIFY_CACHE_DIR: join(work, "cache"),
      },
    };
  }

  function writeDockerConfig(dir: string, config: unknown): void {
    mkdirSync(join(dir, ".docker"), { recursive: true });
    writeFileSync(join(dir, ".docker", "config.json"), JSON.stringify(config));
  }

  const push = (repository: string, env: NodeJS.ProcessEnv, extra: string[] = [], input?: string) =>
    runOcify(["build", "-q", "--from", "scratch", "--layer", `${files}:/`, "-t", `${registry.host}/${repository}`, ...extra], {
      env,
      ...(input === undefined ? {} : { input }),
    });

  const assertNoSecret = (output: string) => {
    assert.doesNotMatch(output, new RegExp(`${password}|${b64(`${username}:${password}`)}`));
  };

  it("gets the credential from the credsStore helper, which it runs with the server on stdin", async () => {
    const { dir, env } = home();
    const helper = writeCredentialHelper(dir, "octest");
    helper.setStored({ [registry.host]: { Username: username, Secret: password } });
    writeDockerConfig(dir, { credsStore: "octest", auths: { [registry.host]: {} } });
    const result = await push("helper/app:1", { ...env, PATH: `${dir}${delimiter}${process.env.PATH}` });
    assert.equal(result.code, 0, result.stderr);
    assertNoSecret(result.stdout + result.stderr);
    assert.deepEqual(helper.calls(), [`get ${registry.host}`], "asked once, for this registry");
    await runOk("skopeo", [
      "inspect",
      "--tls-verify=false",
      "--creds",
      `${username}:${password}`,
      `docker://${registry.host}/helper/app:1`,
    ]);
  });

  it("asks a credHelpers entry before credsStore and auths, as docker does", async () => {
    const { dir, env } = home();
    const good = writeCredentialHelper(dir, "good");
    good.setStored({ [registry.host]: { Username: username, Secret: password } });
    const broken = writeCredentialHelper(dir, "broken", { failWith: "the keyring is locked" });
    writeDockerConfig(dir, {
      credHelpers: { [registry.host]: "good" },
      credsStore: "broken",
      auths: { [registry.host]: { auth: b64(`${username}:wrong`) } },
    });
    const result = await push("helper/app:2", { ...env, PATH: `${dir}${delimiter}${process.env.PATH}` });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(good.calls(), [`get ${registry.host}`]);
    assert.deepEqual(broken.calls(), []);
  });

  it("reports a failing helper in one line naming it, and a missing one as not installed", async () => {
    const { dir, env } = home();
    writeCredentialHelper(dir, "broken", { failWith: "the keyring is locked" });
    writeDockerConfig(dir, { credsStore: "broken" });
    const failing = await push("helper/app:3", { ...env, PATH: `${dir}${delimiter}${process.env.PATH}` });
    assert.equal(failing.code, 1);
    assert.equal(failing.stderr.trim().split("\n").length, 1, failing.stderr);
    assert.match(
      failing.stderr,
      /^ocify: .*credential helper docker-credential-broken failed to get credentials: the keyring is locked \(/,
    );
    writeDockerConfig(dir, { credsStore: "absent-helper" });
    const missing = await push("helper/app:3", env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
    assert.match(missing.stderr, /docker-credential-absent-helper, named in .*config\.json, is not installed \(install/);
  });

  it("uses containers' auth.json with no docker config, the namespace entry before the host's", async () => {
    const { dir, env } = home();
    const authFile = join(dir, "auth.json");
    writeFileSync(
      authFile,
      JSON.stringify({
        auths: {
          [`${registry.host}/team`]: { auth: b64(`${username}:${password}`) },
          [registry.host]: { auth: b64(`${username}:host-wide-but-wrong`) },
        },
      }),
    );
    const inTeam = await push("team/app:1", { ...env, REGISTRY_AUTH_FILE: authFile });
    assert.equal(inTeam.code, 0, inTeam.stderr);
    const elsewhere = await push("other/app:1", { ...env, REGISTRY_AUTH_FILE: authFile });
    assert.equal(elsewhere.code, 1);
    assert.equal(elsewhere.stderr.trim().split("\n").length, 1, elsewhere.stderr);
    assert.match(elsewhere.stderr, new RegExp(`authentication failed for ${registry.host} \\(check .* in ${authFile}`));
    assert.doesNotMatch(elsewhere.stderr, /host-wide-but-wrong/);
  });

  it("reads $XDG_RUNTIME_DIR/containers/auth.json before ~/.config/containers/auth.json", async () => {
    const { dir, env } = home();
    const runtime = join(dir, "run");
    mkdirSync(join(runtime, "containers"), { recursive: true });
    mkdirSync(join(dir, ".config", "containers"), { recursive: true });
    writeFileSync(
      join(runtime, "containers", "auth.json"),
      JSON.stringify({ auths: { [registry.host]: { auth: b64(`${username}:${password}`) } } }),
    );
    writeFileSync(
      join(dir, ".config", "containers", "auth.json"),
      JSON.stringify({ auths: { [registry.host]: { auth: b64(`${username}:stale`) } } }),
    );
    const result = await push("runtime/app:1", { ...env, XDG_RUNTIME_DIR: runtime });
    assert.equal(result.code, 0, result.stderr);
  });

  it("takes --creds USER with --password-stdin, and warns about a password in argv", async () => {
    const { env } = home();
    const piped = await push("flags/app:1", env, ["--creds", username, "--password-stdin"], `${password}\n`);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, "");
    const inArgv = await push("flags/app:2", env, ["--creds", `${username}:${password}`]);
    assert.equal(inArgv.code, 0, inArgv.stderr);
    assert.equal(inArgv.stderr.trim().split("\n").length, 1);
    assert.match(inArgv.stderr, /^ocify: warning: a password in --creds is visible to other users/);
    assertNoSecret(inArgv.stderr + inArgv.stdout);
    const wrong = await push("flags/app:3", env, ["--creds", username, "--password-stdin"], "nope\n");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^ocify: .*authentication failed for .* \(check the user name and password in --creds and --password-stdin/);
    const noPassword = await push("flags/app:4", env, ["--creds", username]);
    assert.equal(noPassword.code, 2);
    assert.match(noPassword.stderr, /^ocify: --creds alice: no password \(add --password-stdin/);
  });

  it("copies with --dest-creds and --password-stdin, the source needing none", async () => {
    const { env } = home();
    const layout = join(work, "layout");
    const built = await runOcify(["build", "-q", "--from", "scratch", "--layer", `${files}:/`, "-t", `oci:${layout}:v1`], { env });
    assert.equal(built.code, 0, built.stderr);
    const copied = await runOcify(
      ["copy", "-q", "--dest-creds", username, "--password-stdin", `oci:${layout}:v1`, `${registry.host}/copied/app:1`],
      { env, input: password },
    );
    assert.equal(copied.code, 0, copied.stderr);
    const both = await runOcify(["copy", "-q", "--src-creds", "a", "--dest-creds", "b", "--password-stdin", `oci:${layout}:v1`, `x/y`], {
      env,
      input: password,
    });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--password-stdin needs exactly one of --src-creds USER and --dest-creds USER/);
  });
});
