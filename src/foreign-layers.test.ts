/**
 * Images with non-distributable (foreign) layers in a real registry (configured, as such registries are,
 * to accept layer URLs), their content served from a loopback web server: copied and built on without
 * transferring that content, and downloaded, verified, only for a docker-archive and only when allowed.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "./test-support/cli.js";
import { pushRawImage, type RawImage, rawImage } from "./test-support/raw-images.js";
import { startRegistry, type TestRegistry } from "./test-support/registry.js";
import { openSource, parseTransportReference } from "./transport/transport.js";
import { validateImage } from "./validate.js";

const skopeo = (args: string[]) => runOk("skopeo", [...args.slice(0, 1), "--tls-verify=false", ...args.slice(1)]);

/** A loopback web server holding blobs by digest (`/blobs/<digest>`), counting requests; `corrupt` flips a byte. */
async function startBlobServer(): Promise<{
  url: string;
  blobs: Map<string, Buffer>;
  requests: string[];
  corrupt: boolean;
  server: Server;
}> {
  const state = {
    url: "",
    blobs: new Map<string, Buffer>(),
    requests: [] as string[],
    corrupt: false,
    server: undefined as unknown as Server,
  };
  state.server = createServer((req, res) => {
    state.requests.push(req.url ?? "");
    const blob = state.blobs.get((req.url ?? "").replace("/blobs/", ""));
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    const body = Buffer.from(blob);
    if (state.corrupt) body[body.length >> 1] = (body[body.length >> 1] as number) ^ 0xff;
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((resolve) => state.server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}`;
  return state;
}

describe("non-distributable (foreign) layers", () => {
  let registry: TestRegistry;
  let host: string;
  let work: string;
  let web: Awaited<ReturnType<typeof startBlobServer>>;
  const images: Record<string, RawImage> = {};
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "0" });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-foreign-test-"));
    registry = await startRegistry({ layerUrls: true });
    host = registry.host;
    web = await startBlobServer();
    for (const format of ["oci", "docker"] as const) {
      const image = rawImage({ format, externalAt: (digest) => `${web.url}/blobs/${digest}` });
      web.blobs.set(image.layerDigests[0] as string, image.external[0] as Buffer);
      images[format] = image;
      await pushRawImage(registry.url, `fo/${format}`, image, "1");
    }
    // Outside loopback, plain HTTP is refused before anything is sent (no network is needed to see it).
    images.remote = rawImage({ externalAt: (digest) => `http://layers.example.invalid/${digest}` });
    await pushRawImage(registry.url, "fo/remote", images.remote, "1");
  });
  after(async () => {
    await new Promise((resolve) => web?.server.close(resolve));
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("copies between registries keeping the manifest digest, without the layer's content", async () => {
    for (const format of ["oci", "docker"]) {
      const image = images[format] as RawImage;
      const result = await runOcify(["copy", `${host}/fo/${format}:1`, `${host}/fo/copy-${format}:1`], { env: env() });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.split(" ")[0], image.digest);
      const foreign = image.layerDigests[0] as string;
      const head = await fetch(`${registry.url}/v2/fo/copy-${format}/blobs/${foreign}`, { method: "HEAD" });
      assert.equal(head.status, 404, "the foreign layer's content was not pushed");
      assert.equal(JSON.parse(await skopeo(["inspect", `docker://${host}/fo/copy-${format}:1`])).Digest, image.digest);
    }
    assert.deepEqual(web.requests, [], "nothing was downloaded from the layer's URL");
    // A registry left as configured by default refuses layer URLs (with HTTP 500): the line says why.
    const strict = await startRegistry();
    try {
      const refused = await runOcify(["copy", "-q", `${host}/fo/oci:1`, `${strict.host}/fo/oci:1`], { env: env() });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /non-distributable layers, kept as URLs: the registry must allow them/);
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    } finally {
      await strict.stop();
    }
  });

  it("copies to an OCI layout and an oci-archive keeping the URLs and no content", async () => {
    const layout = join(work, "layout");
    const oci = await runOcify(["copy", `${host}/fo/oci:1`, `oci:${layout}:oci`], { env: env() });
    assert.equal(oci.code, 0, oci.stderr);
    assert.equal(oci.stdout.split(" ")[0], images.oci?.digest);
    const docker = await runOcify(["copy", `${host}/fo/docker:1`, `oci:${layout}:docker`], { env: env() });
    assert.equal(docker.code, 0, docker.stderr);
    const converted = JSON.parse(await skopeo(["inspect", "--raw", `oci:${layout}:docker`]));
    assert.equal(converted.layers[0].mediaType, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip");
    assert.deepEqual(converted.layers[0].urls, [`${web.url}/blobs/${images.docker?.layerDigests[0]}`]);
    const blobs = readdirSync(join(layout, "blobs", "sha256"));
    for (const image of [images.oci, images.docker]) {
      const digest = image?.layerDigests[0];
      assert.ok(digest && !blobs.includes(digest.slice(7)));
    }
    const archive = await runOcify(["copy", `${host}/fo/oci:1`, `oci-archive:${join(work, "fo.tar")}`], { env: env() });
    assert.equal(archive.code, 0, archive.stderr);
    const back = await runOcify(["copy", `oci:${layout}:oci`, `${host}/fo/back:1`], { env: env() });
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout.split(" ")[0], images.oci?.digest);
    assert.deepEqual(web.requests, []);
  });

  it("writes a docker-archive only with --fetch-foreign-layers, verifying what it downloads", async () => {
    const file = join(work, "foreign.tar");
    const refused = await runOcify(["copy", "-q", `${host}/fo/docker:1`, `docker-archive:${file}`], { env: env() });
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^ocify: .*non-distributable layer sha256:\w+.* at http:\/\/127\.0\.0\.1:\d+\/blobs\/.*--fetch-foreign-layers/,
    );
    assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    assert.ok(!existsSync(file));
    assert.deepEqual(web.requests, []);

    web.corrupt = true;
    const corrupt = await runOcify(["copy", "-q", "--fetch-foreign-layers", `${host}/fo/docker:1`, `docker-archive:${file}`], {
      env: env(),
    });
    web.corrupt = false;
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /digest mismatch/);
    assert.ok(!existsSync(file));

    const fetched = await runOcify(["copy", "--fetch-foreign-layers", `${host}/fo/docker:1`, `docker-archive:${file}`], { env: env() });
    assert.equal(fetched.code, 0, fetched.stderr);
    const source = await openSource(parseTransportReference(`docker-archive:${file}`));
    try {
      const summary = await validateImage(source);
      assert.equal(summary.kind === "image" && summary.layers.length, 2);
    } finally {
      await source.close();
    }

    const remote = await runOcify(["copy", "-q", "--fetch-foreign-layers", `${host}/fo/remote:1`, `docker-archive:${file}.2`], {
      env: env(),
    });
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /plain HTTP is used only for loopback hosts/);
    assert.ok(!existsSync(`${file}.2`));
  });

  it("builds on such a base for a registry without the layer's content, and for a docker-archive when allowed", async () => {
    writeFileSync(join(work, "app.txt"), "app\n");
    web.requests.length = 0;
    const built = await runOcify(
      ["build", "--from", `${host}/fo/oci:1`, "--layer", `${join(work, "app.txt")}:/app.txt`, "-t", `${host}/fo/built:1`],
      {
        env: env(),
      },
    );
    assert.equal(built.code, 0, built.stderr);
    const manifest = JSON.parse(await skopeo(["inspect", "--raw", `docker://${host}/fo/built:1`]));
    assert.equal(manifest.layers.length, 3);
    assert.deepEqual(manifest.layers[0], JSON.parse(images.oci?.bytes.toString() as string).layers[0]);
    assert.deepEqual(web.requests, []);
    const file = join(work, "built.tar");
    const archive = await runOcify(
      [
        "build",
        "--fetch-foreign-layers",
        "--from",
        `${host}/fo/oci:1`,
        "--layer",
        `${join(work, "app.txt")}:/app.txt`,
        "-t",
        `docker-archive:${file}`,
      ],
      { env: env() },
    );
    assert.equal(archive.code, 0, archive.stderr);
    assert.equal(web.requests.length, 1);
  });
});
