import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { makeTestCertificates } from "../test-support/tls.js";
import { RegistryUnreachableError } from "./errors.js";
import { allowUnverifiedTls, hostName, httpRequest, isLoopbackHost, networkError, readBody, redactUrl, transportPolicy } from "./http.js";

describe("hosts and policies", () => {
  it("detects loopback hosts, with or without port", () => {
    for (const host of ["localhost", "LOCALHOST:5000", "127.0.0.1", "127.1.2.3:8080", "::1", "[::1]:5000", "[0:0:0:0:0:0:0:1]"]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of [
      "128.0.0.1",
      "10.0.0.1:5000",
      "example.com",
      "localhost.example.com",
      "[::2]:5000",
      "127.example.com",
      "docker.io",
    ]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
    assert.equal(hostName("[::1]:5000"), "::1");
    assert.equal(hostName("reg.example.com:5000"), "reg.example.com");
  });

  it("uses verified HTTPS only, except loopback (HTTP fallback) and listed insecure registries (no verification)", () => {
    assert.deepEqual(transportPolicy("reg.example.com"), { schemes: ["https"], verifyTls: true });
    assert.deepEqual(transportPolicy("reg.example.com:5000", ["reg.example.com"]), { schemes: ["https"], verifyTls: true });
    assert.deepEqual(transportPolicy("127.0.0.1:5000"), { schemes: ["https", "http"], verifyTls: true });
    assert.deepEqual(transportPolicy("reg.example.com:5000", ["reg.example.com:5000"]), { schemes: ["https", "http"], verifyTls: false });
    assert.deepEqual(transportPolicy("reg.example.com", ["https://Reg.Example.com/"]), { schemes: ["https", "http"], verifyTls: false });
  });

  it("redacts query strings of URLs in messages", () => {
    assert.equal(redactUrl("https://s3.example.com/blob?X-Amz-Signature=abc&X-Amz-Credential=def"), "https://s3.example.com/blob?…");
    assert.equal(redactUrl(new URL("http://127.0.0.1:5000/v2/a/blobs/sha256:00")), "http://127.0.0.1:5000/v2/a/blobs/sha256:00");
    const error = networkError(
      new Error("fetch to https://s3.example.com/x?sig=SECRET failed"),
      "reg.example.com",
      new URL("https://s3.example.com/x?sig=SECRET"),
    );
    assert.ok(!error.message.includes("SECRET"), error.message);
  });

  it("turns network failures into one line naming the host", () => {
    const url = new URL("https://reg.example.com/v2/");
    const cases: [string, RegExp][] = [
      ["ECONNREFUSED", /^cannot reach reg\.example\.com: connection refused \(check that the registry is running/],
      ["ENOTFOUND", /^cannot reach reg\.example\.com: host name not found \(check the registry name/],
      ["ETIMEDOUT", /^cannot reach reg\.example\.com: timed out/],
      ["SELF_SIGNED_CERT_IN_CHAIN", /TLS certificate not trusted .*NODE_EXTRA_CA_CERTS.*use `insecureRegistries: reg\.example\.com`/],
      ["ERR_SSL_WRONG_VERSION_NUMBER", /TLS handshake failed .*use `insecureRegistries: reg\.example\.com`/],
    ];
    for (const [code, pattern] of cases) {
      const error = networkError(Object.assign(new Error(`x\ny ${code}`), { code }), "reg.example.com", url);
      assert.ok(error instanceof RegistryUnreachableError);
      assert.match(error.userMessage, pattern);
      assert.ok(!error.userMessage.includes("\n"));
    }
    const storage = networkError(
      Object.assign(new Error("x"), { code: "ECONNREFUSED" }),
      "reg.example.com",
      new URL("https://s3.example.com/b"),
    );
    assert.match(storage.message, /^cannot reach s3\.example\.com \(for reg\.example\.com\)/);
  });
});

describe("requests", () => {
  let server: ReturnType<typeof createServer>;
  let origin: string;
  const seen: { method: string; url: string }[] = [];
  let failuresLeft = 0;

  before(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "" });
      req.resume();
      if (failuresLeft > 0) {
        failuresLeft--;
        res.writeHead(503).end("busy");
        return;
      }
      if (req.url === "/big") {
        res.writeHead(200).end(Buffer.alloc(3000, 1));
        return;
      }
      res.writeHead(200).end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("retries on 503 what it can send again (no body, or a Buffer), never a streamed body", async () => {
    seen.length = 0;
    failuresLeft = 2;
    const get = await httpRequest({ method: "GET", url: new URL("/x", origin), registry: "r" });
    assert.equal(get.status, 200);
    assert.equal((await readBody(get, 100, "x")).toString(), "ok");
    assert.equal(seen.length, 3);
    failuresLeft = 1;
    const put = await httpRequest({ method: "PUT", url: new URL("/x", origin), registry: "r", body: Buffer.from("data") });
    assert.equal(put.status, 200);
    put.body.resume();
    assert.equal(seen.length, 5);
    failuresLeft = 1;
    const streamed = await httpRequest({
      method: "PATCH",
      url: new URL("/x", origin),
      registry: "r",
      body: Readable.from([Buffer.from("data")]),
    });
    assert.equal(streamed.status, 503);
    streamed.body.resume();
    assert.equal(seen.length, 6);
  });

  it("caps small bodies", async () => {
    const response = await httpRequest({ method: "GET", url: new URL("/big", origin), registry: "r" });
    await assert.rejects(readBody(response, 1000, "token"), /larger than 1000 bytes/);
    const again = await httpRequest({ method: "GET", url: new URL("/big", origin), registry: "r" });
    await assert.rejects(readBody(again, 1000, "token"), (error: unknown) => (error as { code?: string }).code === "RESPONSE_TOO_LARGE");
  });
});

describe("TLS trust", () => {
  let dir: string;
  let server: ReturnType<typeof createHttpsServer>;
  let host: string;
  const protocols: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ocify-tls-"));
    const certificates = makeTestCertificates(dir);
    server = createHttpsServer({ key: readFileSync(certificates.key), cert: readFileSync(certificates.cert) }, (req, res) => {
      if (req.url === "/downgrade") {
        res.writeHead(302, { location: "http://127.0.0.1:9/blob?sig=secret" }).end();
        return;
      }
      protocols.push("https");
      res.writeHead(200, { "docker-distribution-api-version": "registry/2.0" }).end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // NODE_EXTRA_CA_CERTS is read when Node starts, so each case runs the client in a fresh process.
  function ping(env: NodeJS.ProcessEnv, insecure: string[] = []): Promise<{ protocol?: string; error?: string }> {
    const client = fileURLToPath(new URL("./client.js", import.meta.url));
    const script = `
      const { RegistryClient } = await import(${JSON.stringify(client)});
      try {
        const base = await new RegistryClient(process.argv[1], { credentials: [], insecureRegistries: JSON.parse(process.argv[2]) }).base();
        console.log(JSON.stringify({ protocol: base.protocol }));
      } catch (error) { console.log(JSON.stringify({ error: error.userMessage ?? String(error) })); }`;
    const childEnv = { ...process.env, ...env };
    if (!("NODE_EXTRA_CA_CERTS" in env)) delete childEnv.NODE_EXTRA_CA_CERTS;
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script, host, JSON.stringify(insecure)],
        { env: childEnv },
        (error, stdout) => {
          if (error) reject(error);
          else resolve(JSON.parse(stdout) as { protocol?: string; error?: string });
        },
      );
    });
  }

  it("trusts a private CA given in NODE_EXTRA_CA_CERTS", async () => {
    protocols.length = 0;
    assert.deepEqual(await ping({ NODE_EXTRA_CA_CERTS: join(dir, "ca.pem") }), { protocol: "https:" });
    assert.deepEqual(protocols, ["https"]);
  });

  it("refuses an untrusted certificate with a hint, without falling back to plain HTTP", async () => {
    const result = await ping({});
    assert.match(
      result.error ?? "",
      new RegExp(
        `^cannot reach ${host}: TLS certificate not trusted \\(\\w+\\) \\(.*NODE_EXTRA_CA_CERTS.*use \`insecureRegistries: ${host}\`\\)$`,
      ),
    );
  });

  it("skips verification for an insecure registry", async () => {
    assert.deepEqual(await ping({}, [host]), { protocol: "https:" });
  });

  it("refuses to follow a redirect from HTTPS to plain HTTP", async () => {
    allowUnverifiedTls(`https://${host}`);
    await assert.rejects(
      httpRequest({
        method: "GET",
        url: new URL(`https://${host}/downgrade`),
        registry: host,
        followRedirects: true,
        authorization: "Bearer t",
      }),
      (error: unknown) => {
        assert.match(String((error as Error).message), /refusing a redirect from HTTPS to http:\/\/127\.0\.0\.1:9\/blob\?…$/);
        return true;
      },
    );
  });
});
