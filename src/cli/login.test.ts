/**
 * `ocify login` and `logout` against docker-registry with htpasswd: stored base64 in config.json (mode
 * 0600, other entries kept), through a credential helper, or in a containers auth.json; a wrong password
 * leaves the file as it was; what login stored is what the next push uses.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify } from "../test-support/cli.js";
import { writeCredentialHelper } from "../test-support/credential-helper.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";

const username = "bob";
const password = "l0gin-pass";
const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("ocify login and logout", () => {
  let registry: TestRegistry;
  let work: string;
  let files: string;
  let n = 0;

  before(async () => {
    registry = await startRegistry({ htpasswd: { username, password } });
    work = mkdtempSync(join(tmpdir(), "ocify-login-"));
    files = join(work, "files");
    mkdirSync(files);
    writeFileSync(join(files, "a.txt"), "login\n");
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function home(): { dir: string; config: string; env: NodeJS.ProcessEnv } {
    const dir = join(work, `home-${++n}`);
    mkdirSync(join(dir, ".docker"), { recursive: true });
    return {
      dir,
      config: join(dir, ".docker", "config.json"),
      env: {
        HOME: dir,
        DOCKER_CONFIG: join(dir, ".docker"),
        XDG_CONFIG_HOME: join(dir, ".config"),
        XDG_RUNTIME_DIR: "",
        REGISTRY_AUTH_FILE: "",
        OCIFY_CACHE_DIR: join(work, "cache"),
        PATH: `${dir}${delimiter}${process.env.PATH}`,
      },
    };
  }

  const loginWith = (env: NodeJS.ProcessEnv, secret: string, extra: string[] = []) =>
    runOcify(["login", "-u", username, "--password-stdin", ...extra, registry.host], { env, input: `${secret}\n` });
  const push = (repository: string, env: NodeJS.ProcessEnv) =>
    runOcify(["build", "-q", "--from", "scratch", "--layer", `${files}:/`, "-t", `${registry.host}/${repository}`], { env });

  it("stores base64 in auths with mode 0600, keeps other entries, and logs out again", async () => {
    const { config, env } = home();
    const others = { auths: { "other.example.com": { auth: b64("x:y") } }, HttpHeaders: { "X-Kept": "1" } };
    writeFileSync(config, JSON.stringify(others));
    const result = await loginWith(env, password);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "Login Succeeded\n");
    assert.doesNotMatch(result.stdout + result.stderr, new RegExp(password));
    const stored = JSON.parse(readFileSync(config, "utf8"));
    assert.deepEqual(stored, { ...others, auths: { ...others.auths, [registry.host]: { auth: b64(`${username}:${password}`) } } });
    assert.equal(statSync(config).mode & 0o777, 0o600);
    const pushed = await push("login/app:1", env);
    assert.equal(pushed.code, 0, pushed.stderr);
    const out = await runOcify(["logout", registry.host], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `Removing login credentials for ${registry.host}\n`);
    assert.deepEqual(JSON.parse(readFileSync(config, "utf8")), others);
    const again = await runOcify(["logout", registry.host], { env });
    assert.equal(again.stdout, `Not logged in to ${registry.host}\n`);
  });

  it("leaves the file unchanged when the registry refuses the password", async () => {
    const { config, env } = home();
    const before = JSON.stringify({ auths: { [registry.host]: { auth: b64(`${username}:${password}`) } } });
    writeFileSync(config, before);
    const result = await loginWith(env, "wrong-pass");
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(
      result.stderr,
      /^ocify: logging in to .*: the registry refused the user name or password \(check them; nothing was stored\)/,
    );
    assert.doesNotMatch(result.stderr, /wrong-pass/);
    assert.equal(readFileSync(config, "utf8"), before);
  });

  it("stores through credsStore, leaving only an empty entry in the file, and erases through it", async () => {
    const { dir, config, env } = home();
    const helper = writeCredentialHelper(dir, "octest");
    writeFileSync(config, JSON.stringify({ credsStore: "octest" }));
    const result = await loginWith(env, password);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(helper.stored(), { [registry.host]: { Username: username, Secret: password } });
    assert.deepEqual(JSON.parse(readFileSync(config, "utf8")), { credsStore: "octest", auths: { [registry.host]: {} } });
    assert.doesNotMatch(readFileSync(config, "utf8"), new RegExp(`${password}|${b64(`${username}:${password}`)}`));
    const pushed = await push("login/app:2", env);
    assert.equal(pushed.code, 0, pushed.stderr);
    const out = await runOcify(["logout", registry.host], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(helper.stored(), {});
    assert.deepEqual(helper.calls(), [`store ${registry.host} ${username}`, `get ${registry.host}`, `erase ${registry.host}`]);
    assert.deepEqual(JSON.parse(readFileSync(config, "utf8")), { credsStore: "octest", auths: {} });
  });

  it("stores through a credHelpers entry without touching auths", async () => {
    const { dir, config, env } = home();
    const helper = writeCredentialHelper(dir, "perhost");
    const before = { credHelpers: { [registry.host]: "perhost" } };
    writeFileSync(config, JSON.stringify(before));
    const result = await loginWith(env, password);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(helper.stored(), { [registry.host]: { Username: username, Secret: password } });
    assert.deepEqual(JSON.parse(readFileSync(config, "utf8")), before);
  });

  it("writes a containers auth.json with --authfile, which pushes then read", async () => {
    const { dir, env } = home();
    const authFile = join(dir, "auth.json");
    const result = await loginWith(env, password, ["--authfile", authFile]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(readFileSync(authFile, "utf8")), { auths: { [registry.host]: { auth: b64(`${username}:${password}`) } } });
    assert.equal(statSync(authFile).mode & 0o777, 0o600);
    const pushed = await push("login/app:3", { ...env, REGISTRY_AUTH_FILE: authFile });
    assert.equal(pushed.code, 0, pushed.stderr);
    const out = await runOcify(["logout", "--authfile", authFile, registry.host], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(readFileSync(authFile, "utf8")), { auths: {} });
  });

  it("asks for the password when there is no terminal and no --password-stdin, in one line", async () => {
    const { env } = home();
    const result = await runOcify(["login", "-u", username, registry.host], { env });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^ocify: standard input is not a terminal to ask for --password-stdin \(give --password-stdin\)\n$/);
  });
});
