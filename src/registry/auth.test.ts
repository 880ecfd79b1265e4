import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import type { ProgressEvent } from "../progress.js";
import { parseReference } from "../reference.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";
import { startTokenServer, type TokenServer, type TokenServerOptions } from "../test-support/token-server.js";
import { openRegistryDestination, openRegistrySource } from "../transport/registry.js";
import { validateImage } from "../validate.js";
import { Authenticator, chooseChallenge, parseChallenges, repositoryScope } from "./auth.js";
import { RegistryClient } from "./client.js";
import { DeniedError, UnauthorizedError } from "./errors.js";
import { login } from "./login.js";

describe("WWW-Authenticate parsing", () => {
  it("parses a Bearer challenge with several parameters", () => {
    assert.deepEqual(
      parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'),
      [
        {
          scheme: "bearer",
          params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull" },
        },
      ],
    );
  });

  it("keeps commas inside quoted strings and unescapes quotes", () => {
    const [challenge] = parseChallenges(
      'Bearer realm="https://r.example.com/token",scope="repository:a/b:pull,push repository:c:pull",error="say \\"hi\\""',
    );
    assert.equal(challenge?.params.scope, "repository:a/b:pull,push repository:c:pull");
    assert.equal(challenge?.params.error, 'say "hi"');
  });

  it("splits several challenges in one value and across repeated headers", () => {
    const challenges = parseChallenges([
      'Basic realm="Registry Realm", Bearer realm="https://t.example.com/token", service=reg',
      "Negotiate",
    ]);
    assert.deepEqual(
      challenges.map((c) => c.scheme),
      ["basic", "bearer", "negotiate"],
    );
    assert.deepEqual(challenges[1]?.params, { realm: "https://t.example.com/token", service: "reg" });
    assert.equal(chooseChallenge(challenges)?.scheme, "bearer");
  });

  it("accepts unquoted values, spaces around '=' and odd case", () => {
    assert.deepEqual(parseChallenges("BASIC Realm = registry , charset=UTF-8"), [
      { scheme: "basic", params: { realm: "registry", charset: "UTF-8" } },
    ]);
    assert.deepEqual(parseChallenges(""), []);
    assert.equal(chooseChallenge(parseChallenges("Digest realm=x")), undefined);
  });

  it("builds repository scopes", () => {
    assert.equal(repositoryScope("team/app", "pull,push"), "repository:team/app:pull,push");
  });
});

describe("Authenticator", () => {
  const credential = async () => ({ username: "u", password: "p", source: "test" });

  it("answers Basic challenges with the credential, and none without one", async () => {
    const basic = new Authenticator({ registry: "r.example.com", credential });
    assert.equal(await basic.authorization(["repository:a:pull"]), undefined, "no challenge yet: anonymous");
    assert.equal(basic.setChallenge('Basic realm="r"'), true);
    assert.equal(await basic.authorization(["repository:a:pull"]), `Basic ${Buffer.from("u:p").toString("base64")}`);
    const anonymous = new Authenticator({ registry: "r.example.com", credential: async () => undefined });
    anonymous.setChallenge('Basic realm="r"');
    assert.equal(await anonymous.authorization([]), undefined);
  });

  it("refuses to send a password to a token realm over plain HTTP unless the host allows it", async () => {
    const auth = new Authenticator({ registry: "r.example.com", credential, plainHttpAllowed: (host) => host === "127.0.0.1:1" });
    auth.setChallenge('Bearer realm="http://token.example.com/token",service="r"');
    await assert.rejects(auth.authorization(["repository:a:pull"]), /asks for credentials over plain HTTP at http:\/\/token\.example\.com/);
  });

  it("sends a registry token as is", async () => {
    const auth = new Authenticator({ registry: "r.example.com", credential: async () => ({ registryToken: "tok", source: "test" }) });
    auth.setChallenge('Bearer realm="https://token.example.com/token"');
    assert.equal(await auth.authorization(["repository:a:pull"]), "Bearer tok");
  });
});

describe("Bearer token authentication against docker-registry", () => {
  let work: string;
  let tokens: TokenServer;
  let registry: TestRegistry;
  const users = { bob: "b0b-pass", reader: "read-only", alice: "alice-pass", flaky: "flaky-pass" };
  const tokenOptions: TokenServerOptions = {
    users,
    refreshTokens: { "refresh-for-bob": "bob" },
    untrustedFirstToken: ["flaky"],
    // Anonymous users may pull public/*; "reader" may only pull; bob may not read private/*.
    access(account, repository, actions) {
      if (!account) return repository.startsWith("public/") ? actions.filter((a) => a === "pull") : [];
      if (account === "reader") return actions.filter((a) => a === "pull");
      if (account === "bob" && repository.startsWith("private/")) return [];
      return actions;
    },
  };
  const as = (username: string) => [{ get: async () => ({ username, password: users[username as keyof typeof users], source: username }) }];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-token-"));
    tokens = await startTokenServer(work, tokenOptions);
    registry = await startRegistry({
      token: { realm: tokens.realm, service: "ocify-test-registry", issuer: "ocify-test-issuer", rootCertBundle: tokens.certPath },
    });
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 11 });
    for (const repository of ["lib/base", "public/base", "private/base"]) {
      await pushOciLayout(join(work, "base"), "latest", `${registry.host}/${repository}:latest`, { creds: "alice:alice-pass" });
    }
    const dockerConfig = join(work, "docker");
    mkdirSync(dockerConfig);
    // The right credentials under the registry's host; "localhost:PORT" (the same registry) gets wrong ones.
    writeFileSync(
      join(dockerConfig, "config.json"),
      JSON.stringify({
        auths: {
          [registry.host]: { auth: Buffer.from("bob:b0b-pass").toString("base64") },
          [registry.host.replace("127.0.0.1", "localhost")]: { username: "bob", password: "nope" },
        },
      }),
    );
    process.env.DOCKER_CONFIG = dockerConfig;
  });

  after(async () => {
    delete process.env.DOCKER_CONFIG;
    await registry?.stop();
    await tokens?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("pulls, pushes and mounts with tokens scoped per repository, each scope set fetched once", async () => {
    tokens.requests.length = 0;
    const src = await openRegistrySource(parseReference(`${registry.host}/lib/base:latest`), {});
    await validateImage(src);
    const events: ProgressEvent[] = [];
    await copyImage(src, await openRegistryDestination(parseReference(`${registry.host}/team/app:1`), {}), {
      progress: (e) => events.push(e),
    });
    assert.deepEqual(
      events.map((e) => e.phase),
      ["mounted", "mounted"],
    );
    // Pushing again reuses the cached tokens.
    await copyImage(
      await openRegistrySource(parseReference(`${registry.host}/lib/base:latest`), {}),
      await openRegistryDestination(parseReference(`${registry.host}/team/app:2`), {}),
    );
    const scopeSets = tokens.requests.map((r) => [...r.scopes].sort().join(" "));
    assert.ok(tokens.requests.every((r) => r.account === "bob" && r.service === "ocify-test-registry"));
    assert.deepEqual([...new Set(scopeSets)].sort(), [
      "repository:lib/base:pull",
      "repository:lib/base:pull repository:team/app:pull,push",
      "repository:team/app:pull,push",
    ]);
    assert.equal(scopeSets.length, new Set(scopeSets).size, "no scope set is fetched twice");
    const pushed = await openRegistrySource(parseReference(`${registry.host}/team/app:2`), {});
    assert.equal((await pushed.getManifest()).digest, (await src.getManifest()).digest);
  });

  it("reports credentials the token service rejects as an authentication failure", async () => {
    const host = registry.host.replace("127.0.0.1", "localhost");
    const src = await openRegistrySource(parseReference(`${host}/lib/base:latest`), {});
    await assert.rejects(src.getManifest(), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.ok(!error.message.includes("\n"));
      assert.match(
        error.userMessage,
        new RegExp(`^authentication failed for ${host} \\(check the user name and password in .*config\\.json`),
      );
      return true;
    });
    assert.ok(tokens.requests.some((r) => r.account === "rejected:bob"));
  });

  it("asks for credentials when an anonymous token grants nothing", async () => {
    const anonymous = new RegistryClient(registry.host, { credentials: [] });
    const before = tokens.requests.length;
    await assert.rejects(
      anonymous.getManifest("lib/base", "latest", [repositoryScope("lib/base", "pull")], `${registry.host}/lib/base:latest`),
      (error: unknown) => {
        assert.ok(error instanceof UnauthorizedError);
        assert.equal(
          error.userMessage,
          `${registry.host}/lib/base:latest: authentication required (log in with ocify login ${registry.host}, or pass --creds USER --password-stdin)`,
        );
        return true;
      },
    );
    // One token, refused; then one retry with a fresh token, refused again.
    assert.deepEqual(
      tokens.requests.slice(before).map((r) => r.account),
      [undefined, undefined],
    );
  });

  it("reports valid credentials without push access as denied, not as a wrong password", async () => {
    const reader = new RegistryClient(registry.host, {
      credentials: [{ get: async () => ({ username: "reader", password: "read-only", source: "test" }) }],
    });
    await reader.getManifest("lib/base", "latest", [repositoryScope("lib/base", "pull")], "pulling");
    await assert.rejects(reader.startUpload("team/readonly", [repositoryScope("team/readonly", "pull,push")]), (error: unknown) => {
      assert.ok(error instanceof DeniedError);
      assert.equal(
        error.userMessage,
        `starting an upload to ${registry.host}/team/readonly: requested access to the resource is denied (the repository does not exist or your account may not push to it)`,
      );
      return true;
    });
  });
  it("gets anonymous tokens for public pulls", async () => {
    const anonymous = new RegistryClient(registry.host, { credentials: [] });
    const before = tokens.requests.length;
    await anonymous.getManifest("public/base", "latest", [repositoryScope("public/base", "pull")], "public");
    assert.deepEqual(
      tokens.requests.slice(before).map((r) => [r.method, r.account, r.scopes.join(" ")]),
      [["GET", undefined, "repository:public/base:pull"]],
    );
  });

  it("asks for both repositories on a mount, and uploads when the account may not read the one mounted from", async () => {
    const before = tokens.requests.length;
    const src = await openRegistrySource(parseReference(`${registry.host}/private/base:latest`), { credentials: as("alice") });
    const events: ProgressEvent[] = [];
    await copyImage(src, await openRegistryDestination(parseReference(`${registry.host}/team/fallback:1`), { credentials: as("bob") }), {
      progress: (e) => events.push(e),
    });
    const bobs = tokens.requests.slice(before).filter((r) => r.account === "bob");
    assert.ok(
      bobs.some((r) => [...r.scopes].sort().join(" ") === "repository:private/base:pull repository:team/fallback:pull,push"),
      "the mount asked for push here and pull there in one token",
    );
    assert.ok(!events.some((e) => e.phase === "mounted"), "nothing was mounted");
    assert.equal(events.filter((e) => e.phase === "done" && e.kind !== "manifest").length, 2, "layer and config were uploaded");
    const pushed = await openRegistrySource(parseReference(`${registry.host}/team/fallback:1`), { credentials: as("alice") });
    await validateImage(pushed);
  });

  it("keeps a token until its expires_in, then asks for a new one", async () => {
    let clock = Date.now();
    const auth = new Authenticator({ registry: registry.host, credential: async () => as("bob")[0]?.get(), now: () => clock });
    auth.setChallenge(`Bearer realm="${tokens.realm}",service="ocify-test-registry"`);
    const before = tokens.requests.length;
    const scopes = [repositoryScope("lib/base", "pull")];
    const first = await auth.authorization(scopes);
    clock += 250_000;
    assert.equal(await auth.authorization(scopes), first, "still valid after 250 of 300 s");
    clock += 60_000;
    assert.notEqual(await auth.authorization(scopes), first, "expired after 310 s");
    assert.equal(tokens.requests.length - before, 2);
  });

  it("asks for a fresh token once when the registry refuses a cached one", async () => {
    const before = tokens.requests.length;
    const flaky = new RegistryClient(registry.host, { credentials: as("flaky") });
    await flaky.getManifest("lib/base", "latest", [repositoryScope("lib/base", "pull")], "flaky");
    assert.deepEqual(
      tokens.requests.slice(before).map((r) => r.account),
      ["flaky", "flaky"],
    );
  });

  it("exchanges an identity token by OAuth2 POST, and falls back to GET where POST is not served", async () => {
    const identity = [{ get: async () => ({ username: "<token>", password: "", identityToken: "refresh-for-bob", source: "test" }) }];
    let before = tokens.requests.length;
    await new RegistryClient(registry.host, { credentials: identity }).getManifest(
      "lib/base",
      "latest",
      [repositoryScope("lib/base", "pull")],
      "oauth",
    );
    assert.deepEqual(
      tokens.requests.slice(before).map((r) => [r.method, r.grant, r.account]),
      [["POST", "refresh_token", "bob"]],
    );
    tokenOptions.getOnly = true;
    try {
      before = tokens.requests.length;
      await new RegistryClient(registry.host, { credentials: identity }).getManifest(
        "lib/base",
        "latest",
        [repositoryScope("lib/base", "pull")],
        "oauth",
      );
      assert.deepEqual(
        tokens.requests.slice(before).map((r) => [r.method, r.account]),
        [
          ["POST", undefined],
          ["GET", "bob"],
        ],
      );
    } finally {
      tokenOptions.getOnly = false;
    }
  });

  it("logs in against the token service, storing nothing when it refuses", async () => {
    const dockerConfig = join(work, "login", "config.json");
    await assert.rejects(login(registry.host, "bob", "wrong", { dockerConfig }), (error: unknown) => {
      assert.ok(error instanceof UnauthorizedError);
      assert.match(error.userMessage, /the registry refused the user name or password/);
      return true;
    });
    assert.throws(() => readFileSync(dockerConfig), /ENOENT/);
    await login(registry.host, "bob", "b0b-pass", { dockerConfig });
    assert.deepEqual(JSON.parse(readFileSync(dockerConfig, "utf8")).auths, {
      [registry.host]: { auth: Buffer.from("bob:b0b-pass").toString("base64") },
    });
  });
});
