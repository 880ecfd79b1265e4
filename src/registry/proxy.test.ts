import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { InputError } from "../errors.js";
import { certsDirRoots, readHostDir } from "./certs-d.js";
import { environmentProxy, noProxyMatches, parseProxy, proxyAuthorization } from "./proxy.js";
import { parseSettings } from "./settings.js";

describe("proxy settings, as curl reads them", () => {
  it("picks the proxy by scheme, lower case first, with ALL_PROXY last", () => {
    const env = { HTTPS_PROXY: "http://upper:1", https_proxy: "http://lower:2", HTTP_PROXY: "plain:3", ALL_PROXY: "http://all:4" };
    assert.equal(environmentProxy(new URL("https://ghcr.io/v2/"), env)?.host, "lower:2");
    assert.equal(environmentProxy(new URL("http://reg.local/v2/"), env)?.href, "http://plain:3/");
    assert.equal(environmentProxy(new URL("http://reg.local/v2/"), { ALL_PROXY: "http://all:4" })?.host, "all:4");
    assert.equal(environmentProxy(new URL("https://ghcr.io/v2/"), {}), undefined);
  });

  it("proxies loopback too, unless NO_PROXY names it", () => {
    assert.equal(environmentProxy(new URL("https://127.0.0.1:5000/v2/"), { HTTPS_PROXY: "http://p:3128" })?.host, "p:3128");
    assert.equal(
      environmentProxy(new URL("https://127.0.0.1:5000/v2/"), { HTTPS_PROXY: "http://p:3128", NO_PROXY: "127.0.0.1" }),
      undefined,
    );
  });

  it("matches NO_PROXY entries: names, domain suffixes, ports, CIDR and *", () => {
    assert.ok(noProxyMatches("registry.example.com", "443", "example.com"));
    assert.ok(noProxyMatches("registry.example.com", "443", ".example.com"));
    assert.ok(noProxyMatches("registry.example.com", "443", "*.example.com"));
    assert.ok(noProxyMatches("example.com", "443", ".example.com"));
    assert.ok(!noProxyMatches("notexample.com", "443", "example.com"));
    assert.ok(noProxyMatches("reg.local", "5000", "other, reg.local:5000"));
    assert.ok(!noProxyMatches("reg.local", "443", "reg.local:5000"));
    assert.ok(noProxyMatches("10.1.2.3", "443", "10.0.0.0/8"));
    assert.ok(!noProxyMatches("11.1.2.3", "443", "10.0.0.0/8"));
    assert.ok(noProxyMatches("[::1]", "443", "::1"));
    assert.ok(noProxyMatches("anything", "80", "*"));
    assert.ok(!noProxyMatches("anything", "80", ""));
  });

  it("accepts http:// proxies with credentials and refuses other schemes in one line", () => {
    assert.equal(
      proxyAuthorization(parseProxy("http://us%40er:p%3Ass@p:3128", "HTTPS_PROXY")),
      `Basic ${Buffer.from("us@er:p:ss").toString("base64")}`,
    );
    assert.equal(proxyAuthorization(parseProxy("p:3128", "HTTPS_PROXY")), undefined);
    assert.throws(
      () => parseProxy("socks5://p:1080", "HTTPS_PROXY"),
      (error: InputError) => error.userMessage === "HTTPS_PROXY: socks5 proxies are not supported (use an http:// proxy)",
    );
  });

  it("reads per-registry proxies and mirrors from the ocify config, naming the key that is wrong", () => {
    const settings = parseSettings(
      JSON.stringify({
        registries: { "Reg.Example.com": { proxy: "http://a:1", mirrors: ["m.example.com"] }, "b.example.com": { proxy: "direct" } },
      }),
      "/c.json",
    );
    assert.equal((settings.get("reg.example.com")?.proxy as URL | undefined)?.host, "a:1");
    assert.deepEqual(settings.get("reg.example.com")?.mirrors, ["m.example.com"]);
    assert.equal(settings.get("b.example.com")?.proxy, "direct");
    assert.throws(
      () => parseSettings('{"registries":{"x":{"proxy":3}}}', "/c.json"),
      /\/c\.json: registries\["x"\]\.proxy must be a string/,
    );
    assert.throws(() => parseSettings("{", "/c.json"), InputError);
  });
});

describe("certs.d directories", () => {
  it("searches OCIFY_CERTS_D first, then podman's and docker's roots", () => {
    assert.deepEqual(certsDirRoots({ OCIFY_CERTS_D: "/a:/b", XDG_CONFIG_HOME: "/x" }), [
      "/a",
      "/b",
      "/x/containers/certs.d",
      "/etc/containers/certs.d",
      "/etc/docker/certs.d",
    ]);
  });

  it("reads CAs and a client certificate pair, and refuses a key without its certificate", () => {
    const dir = mkdtempSync(join(tmpdir(), "ocify-certsd-"));
    try {
      const host = join(dir, "reg:5000");
      mkdirSync(host);
      writeFileSync(join(host, "ca.crt"), "CA1");
      writeFileSync(join(host, "extra.crt"), "CA2");
      writeFileSync(join(host, "client.cert"), "CERT");
      writeFileSync(join(host, "client.key"), "KEY");
      assert.deepEqual(readHostDir(host), { dir: host, ca: ["CA1", "CA2"], cert: "CERT", key: "KEY" });
      writeFileSync(join(host, "stray.key"), "KEY2");
      assert.throws(() => readHostDir(host), /stray\.key has no certificate stray\.cert beside it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
