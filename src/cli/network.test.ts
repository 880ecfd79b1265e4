/**
 * The network around a registry, through the CLI: a certs.d directory (OCIFY_CERTS_D) with a test CA and a
 * client certificate for a docker-registry that requires mutual TLS; a loopback HTTP proxy that HTTPS_PROXY
 * traffic must pass (CONNECT) and NO_PROXY hosts bypass; plain HTTP through HTTP_PROXY; a per-registry
 * proxy in the ocify config; the system's CA bundle (SSL_CERT_FILE). Every failure is one line.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { startHttpProxy, type TestHttpProxy } from "../test-support/http-proxy.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";
import { makeClientCertificate, makeTestCertificates } from "../test-support/tls.js";

describe("certificates, proxies and mutual TLS", () => {
  let work: string;
  let mtls: TestRegistry;
  let plain: TestRegistry;
  let tlsOnly: TestRegistry;
  let proxy: TestHttpProxy;
  let other: TestHttpProxy;
  let certsD: string;
  let ca: string;
  let files: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-network-"));
    const certificates = makeTestCertificates(work);
    ca = certificates.ca;
    const client = makeClientCertificate(work, work);
    mtls = await startRegistry({ tls: { certificate: certificates.cert, key: certificates.key, clientCas: [ca] } });
    tlsOnly = await startRegistry({ tls: { certificate: certificates.cert, key: certificates.key } });
    plain = await startRegistry();
    certsD = join(work, "certs.d");
    const hostDir = join(certsD, mtls.host);
    mkdirSync(hostDir, { recursive: true });
    copyFileSync(ca, join(hostDir, "ca.crt"));
    copyFileSync(client.cert, join(hostDir, "client.cert"));
    copyFileSync(client.key, join(hostDir, "client.key"));
    proxy = await startHttpProxy();
    other = await startHttpProxy();
    files = join(work, "files");
    mkdirSync(files);
    writeFileSync(join(files, "a.txt"), "network\n");
  });
  after(async () => {
    await Promise.all([mtls?.stop(), plain?.stop(), tlsOnly?.stop(), proxy?.stop(), other?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  const clean = (): NodeJS.ProcessEnv => ({
    OCIFY_CACHE_DIR: join(work, "cache"),
    OCIFY_CONFIG: join(work, "no-config.json"),
    NODE_EXTRA_CA_CERTS: "",
    SSL_CERT_FILE: join(work, "no-bundle.pem"),
    OCIFY_CERTS_D: "",
    XDG_CONFIG_HOME: join(work, "xdg"),
    HTTPS_PROXY: "",
    https_proxy: "",
    HTTP_PROXY: "",
    http_proxy: "",
    ALL_PROXY: "",
    all_proxy: "",
    NO_PROXY: "",
    no_proxy: "",
  });
  const push = (registry: TestRegistry, repository: string, env: NodeJS.ProcessEnv) =>
    runOcify(["build", "-q", "--from", "scratch", "--layer", `${files}:/`, "-t", `${registry.host}/${repository}`], {
      env: { ...clean(), ...env },
    });
  const oneLine = (stderr: string) => assert.equal(stderr.trim().split("\n").length, 1, stderr);

  it("pushes to a mutual-TLS registry with the CA and client certificate of a certs.d directory", async () => {
    const result = await push(mtls, "mtls/app:1", { OCIFY_CERTS_D: certsD });
    assert.equal(result.code, 0, result.stderr);
    await runOk("skopeo", ["inspect", "--raw", "--cert-dir", join(certsD, mtls.host), `docker://${mtls.host}/mtls/app:1`]);
  });

  it("says what is missing: the CA, then the client certificate", async () => {
    const untrusted = await push(mtls, "mtls/app:2", {});
    assert.equal(untrusted.code, 1);
    oneLine(untrusted.stderr);
    assert.match(untrusted.stderr, /TLS certificate not trusted .*certs\.d/);
    const caOnly = join(work, "ca-only");
    mkdirSync(join(caOnly, mtls.host), { recursive: true });
    copyFileSync(ca, join(caOnly, mtls.host, "ca.crt"));
    const noClient = await push(mtls, "mtls/app:2", { OCIFY_CERTS_D: caOnly });
    assert.equal(noClient.code, 1);
    oneLine(noClient.stderr);
    assert.match(noClient.stderr, /client certificate/);
    assert.match(noClient.stderr, new RegExp(`certs\\.d/${mtls.host.replace(/\./g, "\\.")}/`));
  });

  it("trusts the system's CA bundle (SSL_CERT_FILE) when Node's CAs do not verify the registry", async () => {
    const result = await push(tlsOnly, "system/app:1", { SSL_CERT_FILE: ca });
    assert.equal(result.code, 0, result.stderr);
  });

  it("tunnels HTTPS through HTTPS_PROXY with CONNECT, and bypasses it for NO_PROXY hosts", async () => {
    proxy.log.length = 0;
    const through = await push(mtls, "proxied/app:1", { OCIFY_CERTS_D: certsD, HTTPS_PROXY: proxy.url });
    assert.equal(through.code, 0, through.stderr);
    assert.ok(
      proxy.log.length > 0 && proxy.log.every((entry) => entry.method === "CONNECT" && entry.target === mtls.host),
      JSON.stringify(proxy.log),
    );
    proxy.log.length = 0;
    const bypassed = await push(mtls, "proxied/app:2", { OCIFY_CERTS_D: certsD, https_proxy: proxy.url, no_proxy: "localhost,127.0.0.1" });
    assert.equal(bypassed.code, 0, bypassed.stderr);
    assert.deepEqual(proxy.log, []);
  });

  it("sends plain HTTP through HTTP_PROXY as absolute-URI requests", async () => {
    proxy.log.length = 0;
    const result = await push(plain, "proxied/app:3", { HTTP_PROXY: proxy.url });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(proxy.log.some((entry) => entry.method === "GET" && entry.target === `http://${plain.host}/v2/`));
    assert.ok(proxy.log.every((entry) => entry.target.startsWith(`http://${plain.host}/`)));
  });

  it("uses the registry's own proxy from the ocify config instead of the environment's", async () => {
    const config = join(work, "ocify.json");
    writeFileSync(config, JSON.stringify({ registries: { [mtls.host]: { proxy: other.url }, [plain.host]: { proxy: "direct" } } }));
    proxy.log.length = 0;
    other.log.length = 0;
    const result = await push(mtls, "proxied/app:4", { OCIFY_CERTS_D: certsD, HTTPS_PROXY: proxy.url, OCIFY_CONFIG: config });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(proxy.log, []);
    assert.ok(other.log.length > 0);
    const direct = await push(plain, "proxied/app:5", { HTTP_PROXY: proxy.url, OCIFY_CONFIG: config });
    assert.equal(direct.code, 0, direct.stderr);
    assert.deepEqual(proxy.log, []);
  });

  it("reports a proxy that refuses or wants credentials in one line naming the proxy", async () => {
    const closed = await startHttpProxy();
    const closedUrl = closed.url;
    await closed.stop();
    const refused = await push(mtls, "proxied/app:6", { OCIFY_CERTS_D: certsD, HTTPS_PROXY: closedUrl });
    assert.equal(refused.code, 1);
    oneLine(refused.stderr);
    assert.match(refused.stderr, new RegExp(`through proxy ${new URL(closedUrl).host}: connection refused \\(check HTTPS_PROXY`));
    const guarded = await startHttpProxy({ credentials: "proxyuser:proxypass" });
    try {
      const denied = await push(mtls, "proxied/app:7", { OCIFY_CERTS_D: certsD, HTTPS_PROXY: guarded.url });
      assert.equal(denied.code, 1);
      oneLine(denied.stderr);
      assert.match(denied.stderr, /the proxy answered 407 .*\(the proxy wants credentials/);
      const url = new URL(guarded.url);
      url.username = "proxyuser";
      url.password = "proxypass";
      const allowed = await push(mtls, "proxied/app:7", { OCIFY_CERTS_D: certsD, HTTPS_PROXY: url.href });
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.doesNotMatch(allowed.stderr + denied.stderr, /proxypass/);
    } finally {
      await guarded.stop();
    }
  });
});
