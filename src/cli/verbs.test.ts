/**
 * `ocify ls`, `digest`, `tag` and `delete` against docker-registry with htpasswd (credentials from
 * --creds / --password-stdin), checked with skopeo; a logging proxy in front shows what was sent (HEAD
 * only for digest, no blob for tag, Link pages for ls); a registry without deletes refuses in one line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseReference } from "../reference.js";
import { listTags } from "../registry/verbs.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { runOcify, runOk } from "../test-support/cli.js";
import { pushOciLayout, type RegistryProxy, startRegistry, startRegistryProxy, type TestRegistry } from "../test-support/registry.js";

const username = "carol";
const password = "verbs-pass";

describe("registry verbs: ls, digest, tag, delete", () => {
  let registry: TestRegistry;
  let noDeletes: TestRegistry;
  let proxy: RegistryProxy;
  let work: string;
  let digest: string;

  before(async () => {
    registry = await startRegistry({ htpasswd: { username, password } });
    noDeletes = await startRegistry({ deletes: false });
    proxy = await startRegistryProxy(registry.host);
    work = mkdtempSync(join(tmpdir(), "ocify-verbs-"));
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 23 });
    for (const tag of ["v1", "v2", "v3"]) {
      await pushOciLayout(join(work, "base"), "latest", `${registry.host}/team/app:${tag}`, { creds: `${username}:${password}` });
    }
    await pushOciLayout(join(work, "base"), "latest", `${noDeletes.host}/team/app:v1`);
    const inspected = JSON.parse(
      await runOk("skopeo", [
        "inspect",
        "--tls-verify=false",
        "--creds",
        `${username}:${password}`,
        `docker://${registry.host}/team/app:v1`,
      ]),
    );
    digest = inspected.Digest;
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all([registry?.stop(), noDeletes?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  const ocify = (args: string[]) => runOcify([...args, "--creds", username, "--password-stdin"], { input: password });
  const oneLine = (stderr: string) => assert.equal(stderr.trim().split("\n").length, 1, stderr);

  it("lists every tag, one per line or as JSON", async () => {
    const lines = await ocify(["ls", `${registry.host}/team/app`]);
    assert.equal(lines.code, 0, lines.stderr);
    // Debian's docker-registry lists tags in no particular order.
    assert.deepEqual(lines.stdout.split("\n").filter(Boolean).sort(), ["v1", "v2", "v3"]);
    assert.match(lines.stdout, /^(v\d\n){3}$/);
    const json = await ocify(["ls", "--json", `docker://${registry.host}/team/app`]);
    assert.deepEqual(JSON.parse(json.stdout).sort(), ["v1", "v2", "v3"]);
    const unknown = await ocify(["ls", `${registry.host}/team/nothing`]);
    assert.equal(unknown.code, 1);
    oneLine(unknown.stderr);
    assert.match(unknown.stderr, /repository name not known to registry \(check the repository name/);
  });

  it("follows the registry's Link pages", async () => {
    // Debian's docker-registry (2.8) does not paginate tags: this front pages the real registry's list as
    // registries that do (distribution-spec end-8b: ?n=&last=, Link: <…>; rel="next").
    const paging = await startRegistryProxy(registry.host, {
      intercept(req, res) {
        const url = new URL(req.url ?? "/", "http://front");
        if (!url.pathname.endsWith("/tags/list") || !url.searchParams.has("n")) return false;
        httpGet({ host: "127.0.0.1", port: Number(registry.host.split(":")[1]), path: url.pathname, headers: req.headers }, (upstream) => {
          let text = "";
          upstream.on("data", (chunk: Buffer) => {
            text += chunk.toString();
          });
          upstream.on("end", () => {
            if (upstream.statusCode !== 200) {
              res.writeHead(upstream.statusCode ?? 500, upstream.headers).end(text);
              return;
            }
            const all = (JSON.parse(text).tags as string[]).sort();
            const after = url.searchParams.get("last");
            const n = Number(url.searchParams.get("n"));
            const rest = after ? all.filter((tag) => tag > after) : all;
            const page = rest.slice(0, n);
            const headers: Record<string, string> = { "content-type": "application/json" };
            if (rest.length > n) headers.link = `<${url.pathname}?n=${n}&last=${page.at(-1)}>; rel="next"`;
            res.writeHead(200, headers).end(JSON.stringify({ name: "team/app", tags: page }));
          });
        });
        return true;
      },
    });
    try {
      const credentials = [{ get: async () => ({ username, password, source: "test" }) }];
      const tags = await listTags(parseReference(`${paging.host}/team/app`), { credentials, pageSize: 2 });
      assert.deepEqual(tags, ["v1", "v2", "v3"]);
      const pages = paging.requests.filter((r) => r.url.includes("/tags/list"));
      assert.deepEqual(
        pages.map((r) => r.url),
        ["/v2/team/app/tags/list?n=2", "/v2/team/app/tags/list?n=2&last=v2"],
      );
    } finally {
      await paging.stop();
    }
  });

  it("prints the digest the registry has, asking with HEAD only", async () => {
    const before = proxy.requests.length;
    const result = await ocify(["digest", `${proxy.host}/team/app:v2`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${digest}\n`);
    const manifestRequests = proxy.requests.slice(before).filter((r) => r.url.includes("/manifests/"));
    assert.deepEqual([...new Set(manifestRequests.map((r) => r.method))], ["HEAD"]);
    const missing = await ocify(["digest", `${registry.host}/team/app:nope`]);
    assert.equal(missing.code, 1);
    oneLine(missing.stderr);
    assert.match(missing.stderr, /team\/app:nope: manifest unknown \(check the tag exists\)/);
  });

  it("tags a manifest without moving a blob", async () => {
    const before = proxy.requests.length;
    const result = await ocify(["tag", `${proxy.host}/team/app:v1`, "release"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${digest} ${proxy.host}/team/app:release\n`);
    assert.ok(!proxy.requests.slice(before).some((r) => r.url.includes("/blobs/")));
    const inspected = JSON.parse(
      await runOk("skopeo", [
        "inspect",
        "--tls-verify=false",
        "--creds",
        `${username}:${password}`,
        `docker://${registry.host}/team/app:release`,
      ]),
    );
    assert.equal(inspected.Digest, digest);
    const bad = await ocify(["tag", `${registry.host}/team/app:v1`, "bad!tag"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"bad!tag" is not a valid tag/);
  });

  it("deletes by digest, and says what to do without one or where deletes are off", async () => {
    const noDigest = await ocify(["delete", `${registry.host}/team/app:v3`]);
    assert.equal(noDigest.code, 2);
    assert.match(noDigest.stderr, /delete needs a digest: .* \(ocify digest .*team\/app:v3 prints it/);
    const deleted = await ocify(["delete", `${registry.host}/team/app@${digest}`]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, `deleted ${registry.host}/team/app@${digest}\n`);
    const gone = await ocify(["digest", `${registry.host}/team/app:v3`]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /manifest unknown/);
    const refused = await runOcify(["delete", `${noDeletes.host}/team/app@${digest}`]);
    assert.equal(refused.code, 1);
    oneLine(refused.stderr);
    assert.match(refused.stderr, /does not allow deleting manifests \(delete it in the registry's web interface/);
  });
});
