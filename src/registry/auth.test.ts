import assert from "node:assert/strict";
import { createSign, X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import type { ProgressEvent } from "../progress.js";
import { parseReference } from "../reference.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";
import { makeSelfSigned } from "../test-support/tls.js";
import { openRegistryDestination, openRegistrySource } from "../transport/registry.js";
import { validateImage } from "../validate.js";
import { Authenticator, chooseChallenge, parseChallenges, repositoryScope } from "./auth.js";
import { RegistryClient } from "./client.js";
import { DeniedError, UnauthorizedError } from "./errors.js";

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

/** A token service as distribution's token auth expects: RS256 JWTs whose x5c is the self-signed cert in rootcertbundle. */
async function startTokenServer(dir: string, users: Record<string, string>) {
  const signer = makeSelfSigned(dir, "signer", "ocify-test-token-signer");
  const key = readFileSync(signer.key, "utf8");
  const cert = new X509Certificate(readFileSync(signer.cert));
  const requests: { account: string | undefined; scopes: string[]; service: string | null }[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const scopes = url.searchParams.getAll("scope");
    let account: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith("Basic ")) {
      const [user, ...rest] = Buffer.from(header.slice(6), "base64").toString().split(":");
      if (!user || users[user] !== rest.join(":")) {
        requests.push({ account: `rejected:${user}`, scopes, service: url.searchParams.get("service") });
        res.writeHead(401, { "content-type": "application/json" }).end('{"details":"bad credentials"}');
        return;
      }
      account = user;
    }
    requests.push({ account, scopes, service: url.searchParams.get("service") });
    // Authenticated users get what they ask for ("reader" only pull); anonymous users get nothing.
    const access = account
      ? scopes.map((scope) => {
          const [type, ...middle] = scope.split(":");
          const actions = (middle.pop() ?? "").split(",").filter((a) => account !== "reader" || a === "pull");
          return { type, name: middle.join(":"), actions };
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: "ocify-test-issuer",
      sub: account ?? "",
      aud: "ocify-test-registry",
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: String(Math.random()),
      access,
    };
    const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const input = `${b64url({ alg: "RS256", typ: "JWT", x5c: [cert.raw.toString("base64")] })}.${b64url(claims)}`;
    const signature = createSign("RSA-SHA256").update(input).sign(key).toString("base64url");
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: `${input}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath: signer.cert,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("Bearer token authentication against docker-registry", () => {
  let work: string;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;
  let registry: TestRegistry;
  const users = { bob: "b0b-pass", reader: "read-only" };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-token-"));
    tokens = await startTokenServer(work, users);
    registry = await startRegistry({
      token: { realm: tokens.realm, service: "ocify-test-registry", issuer: "ocify-test-issuer", rootCertBundle: tokens.certPath },
    });
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 11 });
    await pushOciLayout(join(work, "base"), "latest", `${registry.host}/lib/base:latest`, { creds: "bob:b0b-pass" });
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
        new RegExp(`^authentication failed for ${host} \\(check the username and password in .*config\\.json`),
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
          `${registry.host}/lib/base:latest: authentication required (run docker login ${registry.host}, or add credentials to ~/.docker/config.json)`,
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
        `starting an upload to ${registry.host}/team/readonly: requested access to the resource is denied (check that your account may access this repository)`,
      );
      return true;
    });
  });
});
