import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { InputError } from "../errors.js";
import {
  type Credential,
  type CredentialProvider,
  configKeyHost,
  containersAuthPaths,
  defaultCredentialProviders,
  dockerConfigPath,
  findAuthEntry,
  helperFor,
  parseCredentialFlag,
  readDockerConfig,
  resolveCredential,
} from "./credentials.js";

const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("docker config.json credentials", () => {
  it("finds config.json in $DOCKER_CONFIG, else ~/.docker", () => {
    assert.equal(dockerConfigPath({ DOCKER_CONFIG: "/etc/dc" }), "/etc/dc/config.json");
    assert.equal(dockerConfigPath({}), join(homedir(), ".docker", "config.json"));
  });

  it("reduces keys to their host", () => {
    assert.equal(configKeyHost("https://index.docker.io/v1/"), "index.docker.io");
    assert.equal(configKeyHost("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    assert.equal(configKeyHost("Registry.Example.com"), "registry.example.com");
  });

  it("matches keys with or without scheme and path, preferring an exact key", () => {
    const auths = {
      "https://reg.example.com/v2/": { auth: b64("a:1") },
      "reg.example.com:5000": { auth: b64("b:2") },
      "http://reg.example.com:5000": { auth: b64("c:3") },
      "empty.example.com": {},
    };
    assert.equal(findAuthEntry(auths, "reg.example.com")?.[0], "https://reg.example.com/v2/");
    assert.equal(findAuthEntry(auths, "reg.example.com:5000")?.[0], "reg.example.com:5000");
    assert.equal(findAuthEntry(auths, "other.example.com"), undefined);
    assert.equal(findAuthEntry(auths, "empty.example.com"), undefined, "an entry without secret (credsStore) is not a credential");
  });

  it("finds Docker Hub credentials under the v1 index URL", () => {
    const auths = { "https://index.docker.io/v1/": { auth: b64("hubuser:hubpass") }, "registry-1.docker.io": { auth: b64("x:y") } };
    assert.equal(findAuthEntry(auths, "docker.io")?.[0], "https://index.docker.io/v1/");
    assert.equal(findAuthEntry({ "index.docker.io": { auth: b64("u:p") } }, "docker.io")?.[0], "index.docker.io");
  });

  it("decodes auth, username/password and identitytoken through the default chain", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ocify-creds-"));
    try {
      writeFileSync(
        join(dir, "config.json"),
        JSON.stringify({
          auths: {
            "https://index.docker.io/v1/": { auth: b64("hub:pa:ss:word") },
            "plain.example.com": { username: "u", password: "p" },
            "oauth.example.com": { auth: b64("<token>:"), identitytoken: "refresh-me" },
          },
        }),
      );
      const providers = await defaultCredentialProviders({ DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir });
      const source = join(dir, "config.json");
      assert.deepEqual(await resolveCredential("docker.io", providers), { username: "hub", password: "pa:ss:word", source });
      assert.deepEqual(await resolveCredential("plain.example.com", providers), { username: "u", password: "p", source });
      assert.deepEqual(await resolveCredential("oauth.example.com", providers), {
        username: "<token>",
        password: "",
        identityToken: "refresh-me",
        source,
      });
      assert.equal(await resolveCredential("unknown.example.com", providers), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("treats a missing file as no credentials and a broken one as an InputError", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ocify-creds-"));
    try {
      assert.equal(await readDockerConfig(join(dir, "config.json")), undefined);
      assert.deepEqual(await defaultCredentialProviders({ DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir }), []);
      writeFileSync(join(dir, "config.json"), "{ not json");
      await assert.rejects(readDockerConfig(join(dir, "config.json")), InputError);
      writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: { "r.example.com": { auth: b64("no-colon") } } }));
      await assert.rejects(
        resolveCredential("r.example.com", await defaultCredentialProviders({ DOCKER_CONFIG: dir, XDG_CONFIG_HOME: dir })),
        InputError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("matches namespace keys of auth.json, the longest first, and never a namespace key for the whole host", () => {
    const auths = {
      "reg.example.com/team": { auth: b64("team:1") },
      "reg.example.com/team/app": { auth: b64("app:2") },
      "reg.example.com/other": { auth: b64("other:3") },
    };
    assert.equal(findAuthEntry(auths, "reg.example.com", "team/app")?.[0], "reg.example.com/team/app");
    assert.equal(findAuthEntry(auths, "reg.example.com", "team/lib")?.[0], "reg.example.com/team");
    assert.equal(findAuthEntry(auths, "reg.example.com", "teamwork/app"), undefined);
    assert.equal(findAuthEntry(auths, "reg.example.com"), undefined);
    assert.equal(findAuthEntry({ "docker.io/me": { auth: b64("me:x") } }, "docker.io", "me/app")?.[0], "docker.io/me");
  });

  it("names the helper for a host: credHelpers first, then credsStore", () => {
    const config = { credHelpers: { "reg.example.com": "ecr-login", "https://index.docker.io/v1/": "hub" }, credsStore: "pass" };
    assert.deepEqual(helperFor(config, "reg.example.com"), { name: "ecr-login", perHost: true });
    assert.deepEqual(helperFor(config, "docker.io"), { name: "hub", perHost: true });
    assert.deepEqual(helperFor(config, "other.example.com"), { name: "pass", perHost: false });
    assert.equal(helperFor({}, "other.example.com"), undefined);
  });

  it("lists containers' auth.json files in podman's order", () => {
    assert.deepEqual(containersAuthPaths({ REGISTRY_AUTH_FILE: "/a.json", XDG_RUNTIME_DIR: "/run/u", XDG_CONFIG_HOME: "/c" }), [
      "/a.json",
      "/c/containers/auth.json",
    ]);
    assert.deepEqual(containersAuthPaths({ XDG_RUNTIME_DIR: "/run/u", XDG_CONFIG_HOME: "/c" }), [
      "/run/u/containers/auth.json",
      "/c/containers/auth.json",
    ]);
    assert.deepEqual(containersAuthPaths({ HOME: "/h" }).at(-1), join(homedir(), ".config", "containers", "auth.json"));
  });

  it("parses --creds USER[:PASSWORD], keeping colons in the password", () => {
    assert.deepEqual(parseCredentialFlag("u:p:q", "--creds"), { username: "u", password: "p:q" });
    assert.deepEqual(parseCredentialFlag("u", "--creds"), { username: "u" });
    assert.throws(() => parseCredentialFlag(":p", "--creds"), InputError);
  });

  it("asks providers in order and stops at the first that has a credential", async () => {
    const asked: string[] = [];
    const provider = (name: string, credential?: Credential): CredentialProvider => ({
      async get() {
        asked.push(name);
        return credential;
      },
    });
    const found = await resolveCredential("r.example.com", [
      provider("helper"),
      provider("store", { username: "s", password: "t", source: "store" }),
      provider("auths"),
    ]);
    assert.equal(found?.source, "store");
    assert.deepEqual(asked, ["helper", "store"]);
  });
});
