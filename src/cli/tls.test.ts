/**
 * A registry served over HTTPS with a certificate from a private CA (generated here with openssl): TLS is
 * verified by default, a private CA is added with NODE_EXTRA_CA_CERTS, and --insecure-registry is the
 * explicit way out. Never a silent fall back to plain HTTP.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { startRegistry } from "../test-support/registry.js";
import { makeTestCertificates } from "../test-support/tls.js";

type Registry = Awaited<ReturnType<typeof startRegistry>>;

describe("ocify against a registry served over HTTPS", () => {
  let work: string;
  let registry: Registry;
  let ca: string;
  let app: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-tls-test-"));
    const certificates = makeTestCertificates(work);
    ca = certificates.ca;
    registry = await startRegistry({ tls: { certificate: certificates.cert, key: certificates.key } });
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "hello.txt"), "hello over TLS\n");
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const build = (tag: string, env: NodeJS.ProcessEnv = {}, extra: string[] = []) =>
    runOcify(["build", "--from", "scratch", "--layer", `${app}:/app`, ...extra, "-t", `${registry.host}/tls/app:${tag}`], {
      env: { OCIFY_CACHE_DIR: join(work, "cache"), NODE_EXTRA_CA_CERTS: "", ...env },
    });

  it("refuses a certificate it cannot verify, in one line that says what to do", async () => {
    const result = await build("untrusted", {}, ["-q"]);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] as string, /TLS certificate not trusted/);
    assert.match(lines[0] as string, /NODE_EXTRA_CA_CERTS/);
    assert.match(lines[0] as string, /--insecure-registry/);
  });

  it("pushes when the private CA is added with NODE_EXTRA_CA_CERTS", async () => {
    const result = await build("trusted", { NODE_EXTRA_CA_CERTS: ca });
    assert.equal(result.code, 0, result.stderr);
    const digest = result.stdout.split(" ")[0] as string;
    const inspected = JSON.parse(
      await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/tls/app:trusted`]),
    );
    assert.equal(inspected.schemaVersion, 2);
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  });

  it("pushes without verification only when the registry is named with --insecure-registry", async () => {
    const result = await build("insecure", {}, ["--insecure-registry", registry.host]);
    assert.equal(result.code, 0, result.stderr);
    await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/tls/app:insecure`]);
  });
});
