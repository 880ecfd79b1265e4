import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { RegistryClient, registryClient } from "./client.js";
import {
  BlobUnknownError,
  DeniedError,
  ManifestUnknownError,
  NameUnknownError,
  RegistryError,
  registryError,
  retryAfterSeconds,
  TooManyRequestsError,
  UnauthorizedError,
} from "./errors.js";

const body = (code: string, message = code.toLowerCase()) => Buffer.from(JSON.stringify({ errors: [{ code, message, detail: {} }] }));

describe("registry error mapping", () => {
  const context = { what: "r.example.com/team/app:1", registry: "r.example.com", kind: "manifest" as const };

  it("maps distribution error codes to classes with one-line messages", () => {
    assert.ok(registryError(404, body("MANIFEST_UNKNOWN"), context) instanceof ManifestUnknownError);
    assert.ok(registryError(404, body("BLOB_UNKNOWN"), context) instanceof BlobUnknownError);
    assert.ok(registryError(404, body("NAME_UNKNOWN"), context) instanceof NameUnknownError);
    assert.ok(registryError(403, body("DENIED"), context) instanceof DeniedError);
    assert.ok(registryError(429, body("TOOMANYREQUESTS"), context) instanceof TooManyRequestsError);
    assert.ok(registryError(401, body("UNAUTHORIZED"), context) instanceof UnauthorizedError);
    assert.equal(
      registryError(400, body("MANIFEST_BLOB_UNKNOWN"), context).userMessage,
      "r.example.com/team/app:1: manifest references a blob the registry does not have (push the blobs before the manifest)",
    );
    assert.equal(
      registryError(404, body("MANIFEST_UNKNOWN"), context).userMessage,
      "r.example.com/team/app:1: manifest unknown (check the tag exists)",
    );
  });

  it("falls back on the HTTP status when the body is not a distribution error", () => {
    assert.ok(registryError(404, Buffer.from("<html>not found</html>"), context) instanceof ManifestUnknownError);
    assert.ok(registryError(404, undefined, { ...context, kind: "blob" }) instanceof BlobUnknownError);
    assert.ok(registryError(403, undefined, context) instanceof DeniedError);
    const server = registryError(502, Buffer.from("bad\ngateway"), context);
    assert.equal(server.code, "HTTP_502");
    assert.equal(
      server.userMessage,
      "r.example.com/team/app:1: registry r.example.com failed with HTTP 502 (the registry has a problem; retry later)",
    );
    assert.equal(registryError(418, undefined, { ...context, what: "" }).message, "registry r.example.com answered HTTP 418");
  });

  it("says when a rate limit resets, from Retry-After or RateLimit-Reset", () => {
    const headers = (values: Record<string, string>) => ({ header: (name: string) => values[name] });
    const limited = registryError(429, body("TOOMANYREQUESTS"), context, headers({ "ratelimit-reset": "120" }));
    assert.ok(limited instanceof TooManyRequestsError);
    assert.equal(limited.retryAfterSeconds, 120);
    assert.match(
      limited.userMessage,
      /^r\.example\.com\/team\/app:1: too many requests \(the registry limits your requests; retry after \d\d:\d\d:\d\d UTC \(in 120 s\), or log in with ocify login r\.example\.com for a higher limit\)$/,
    );
    assert.equal(retryAfterSeconds(headers({ "retry-after": "7" })), 7);
    assert.equal(retryAfterSeconds(headers({ "ratelimit-reset": String(1_000_000_000 + 90) }), 1_000_000_000_000), 90);
    assert.equal(retryAfterSeconds(headers({ "retry-after": new Date(2_000_000_000_000 + 30_000).toUTCString() }), 2_000_000_000_000), 30);
    assert.match(registryError(429, undefined, context).userMessage, /wait before retrying/);
  });

  it("says what to do about a denied push or pull, and an unsupported operation", () => {
    assert.match(
      registryError(403, body("DENIED"), { ...context, push: true }).userMessage,
      /does not exist or your account may not push to it\)$/,
    );
    assert.match(registryError(403, undefined, context).userMessage, /may not pull from it\)$/);
    assert.match(
      registryError(405, body("UNSUPPORTED"), context).userMessage,
      /does not support this operation \(the registry's configuration/,
    );
  });

  it("says which credentials failed, or that some are needed", () => {
    const failed = registryError(401, undefined, { ...context, credentialSource: "/home/me/.docker/config.json" });
    assert.equal(
      failed.userMessage,
      "authentication failed for r.example.com (check the user name and password in /home/me/.docker/config.json, or log in again with ocify login r.example.com)",
    );
    assert.match(
      registryError(401, undefined, context).userMessage,
      /^r\.example\.com\/team\/app:1: authentication required \(log in with ocify login r\.example\.com/,
    );
  });
});

describe("registry client", () => {
  it("sends Docker Hub API requests to registry-1.docker.io", () => {
    assert.equal(new RegistryClient("docker.io").apiHost, "registry-1.docker.io");
    assert.equal(new RegistryClient("127.0.0.1:5000").apiHost, "127.0.0.1:5000");
  });

  it("shares one client (tokens, connections) per registry within the process", () => {
    assert.equal(registryClient("r.example.com"), registryClient("r.example.com"));
    assert.notEqual(registryClient("r.example.com"), registryClient("r.example.com", { insecureRegistries: ["r.example.com"] }));
  });

  describe("against a web server that is not a registry", () => {
    let server: ReturnType<typeof createServer>;
    let host: string;
    before(async () => {
      server = createServer((_req, res) => {
        res.writeHead(404, { "content-type": "text/html" }).end("<html>nothing here</html>");
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it("says the host does not serve the registry API", async () => {
      await assert.rejects(new RegistryClient(host, { credentials: [] }).ping(), (error: unknown) => {
        assert.ok(error instanceof RegistryError);
        assert.equal(error.userMessage, `${host} does not serve the registry API at http://${host}/v2/ (check the registry host name)`);
        return true;
      });
    });
  });
});
