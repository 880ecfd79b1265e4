/**
 * meta-ocify's contract, without bitbake: each IMAGE_CMD of the class, expanded with the variables a build
 * sets, runs with dash as a user who is not root, under pseudo (as bitbake runs it) or fakeroot, with a
 * PATH of a few host tools and ocify, on a rootfs made under the same fake root with files owned by
 * 1234:567, a setuid binary, a file capability, a device node and a hard link. The images are judged by
 * skopeo, umoci (unpacking as root) and a real `docker load` / `docker run`.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { busyboxPath, writeBaseImageLayout } from "../test-support/base-image.js";
import { expandClass } from "../test-support/bitbake-class.js";
import { type FakeRoot, giveToTaskUser, makeHostTools, runUnderFakeRoot, writeTaskScript } from "../test-support/bitbake-task.js";
import { ocifyBin, runOk } from "../test-support/cli.js";
import { type DockerEngine, dockerEngineUnavailableReason, startDockerEngine } from "../test-support/docker-engine.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";

const linkName = "core-image-minimal-qemux86-64.rootfs";
const imageName = `${linkName}-20260101000000`;
// IMAGE_NAME in a later bitbake run (it carries the run's date): tasks after do_image_complete see this one.
const laterImageName = `${linkName}-20260101000500`;
const epoch = "1700000000";

// The rootfs do_rootfs would leave: made under the fake root, so its owners and devices live in its database.
const makeRootfs = `set -e
PATH=/usr/sbin:/usr/bin:/sbin:/bin
r="$1"
mkdir -p "$r/bin" "$r/usr/bin" "$r/dev" "$r/etc" "$r/home/app" "$r/opt/app"
cp ${busyboxPath} "$r/bin/busybox"
for a in sh stat ls cat id; do ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1234:567::/home/app:/bin/sh\\n' >"$r/etc/passwd"
echo data >"$r/home/app/data.txt"
chown -R 1234:567 "$r/home/app"
cp ${busyboxPath} "$r/usr/bin/su"
chmod 4755 "$r/usr/bin/su"
cp ${busyboxPath} "$r/usr/bin/ping"
setcap cap_net_raw+ep "$r/usr/bin/ping"
chown 0:0 "$r/usr/bin/ping"
mknod "$r/dev/console" c 5 1
printf '#!/bin/sh\\necho app\\n' >"$r/opt/app/run"
chmod 755 "$r/opt/app/run"
ln "$r/opt/app/run" "$r/opt/app/run-link"
find "$r" -exec touch -h -d @${epoch} {} +
`;

interface Build {
  dir: string;
  vars: Record<string, string>;
  env: Record<string, string>;
}

/** The variables bitbake sets for an image recipe's tasks (paths inside `dir`), plus the recipe's own. */
function newBuild(root: string, name: string, recipe: Record<string, string>): Build {
  const dir = join(root, name);
  mkdirSync(dir);
  giveToTaskUser(dir);
  const vars: Record<string, string> = {
    IMAGE_ROOTFS: join(dir, "rootfs"),
    IMGDEPLOYDIR: join(dir, "deploy-ocify"),
    DEPLOY_DIR_IMAGE: join(dir, "deploy-images"),
    WORKDIR: join(dir, "work"),
    T: join(dir, "work", "temp"),
    TMPDIR: join(root, "tmp"),
    IMAGE_NAME: imageName,
    IMAGE_LINK_NAME: linkName,
    IMAGE_BASENAME: "core-image-minimal",
    IMAGE_MACHINE_SUFFIX: "-qemux86-64",
    IMAGE_NAME_SUFFIX: ".rootfs",
    TARGET_ARCH: "x86_64",
    TUNE_FEATURES: "m64 core2",
    // What oe.go.map_arch(TARGET_ARCH) gives for x86_64 (the real mapping is run by npm run test:yocto).
    OCIFY_IMAGE_ARCH: "amd64",
    REPRODUCIBLE_TIMESTAMP_ROOTFS: epoch,
    SOURCE_DATE_EPOCH: epoch,
    ...recipe,
  };
  const env = { PATH: join(root, "hosttools"), HOME: join(dir, "home"), LC_ALL: "C" };
  return { dir, vars, env };
}

/** Run a task of the class in `build` (the body as bitbake would write it); the fake root's database is the build's. */
async function runTask(build: Build, fake: FakeRoot, task: string, body: string | undefined, setup = "") {
  const expanded = expandClass(build.vars, ["IMAGE_CMD:ocify-oci", "IMAGE_CMD:ocify-docker"]);
  assert.deepEqual(expanded.unknown, [], "every variable the class uses is one bitbake sets or the class defines");
  const script = join(build.dir, `run.${task}`);
  if (body === undefined) body = expanded.funcs[task] ?? "";
  const expandedBody = body.replace(/\$\{([A-Z_:a-z-]+)\}/g, (_, name: string) => expanded.vars[name] ?? build.vars[name] ?? "");
  writeTaskScript(script, expanded, task, `${setup}${expandedBody}`, build.dir, build.env);
  return runUnderFakeRoot(fake, script, build.env);
}

/** image.bbclass's do_image_<type>: the IMAGE_CMD, then cd ${IMGDEPLOYDIR}. */
function imageTaskBody(type: string): string {
  return `\t\${IMAGE_CMD:${type}}\n\tcd \${IMGDEPLOYDIR}`;
}

/** Prepare a build's directories and rootfs as do_rootfs would, inside the fake root's session. */
function rootfsSetup(build: Build): string {
  const dirs = ["IMGDEPLOYDIR", "DEPLOY_DIR_IMAGE", "T"].map((v) => `"${build.vars[v]}"`).join(" ");
  return `\tmkdir -p ${dirs} "${build.env.HOME}"\n\tsh ${join(build.dir, "..", "make-rootfs.sh")} "${build.vars.IMAGE_ROOTFS}"\n`;
}

/** do_image_complete: its sstate copies IMGDEPLOYDIR to DEPLOY_DIR_IMAGE, create_symlinks links by IMAGE_LINK_NAME. */
function deployImage(build: Build): void {
  const [from, to] = [build.vars.IMGDEPLOYDIR as string, build.vars.DEPLOY_DIR_IMAGE as string];
  execFileSync("sh", ["-c", `cp -a "$1"/* "$2"/ && ln -sf "$3.ocify-oci" "$2/$4.ocify-oci"`, "sh", from, to, imageName, linkName]);
  giveToTaskUser(to);
}

function sha256(bytes: string | Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A zstd tar of SPDX documents, as scarthgap's image_combine_spdx writes it into IMGDEPLOYDIR during do_rootfs. */
function writeScarthgapSbom(deploy: string): void {
  const docs = join(deploy, "..", "spdx-docs");
  mkdirSync(docs, { recursive: true });
  writeFileSync(join(docs, `${imageName}.spdx.json`), JSON.stringify({ spdxVersion: "SPDX-2.2", name: imageName }));
  writeFileSync(join(docs, "busybox.spdx.json"), JSON.stringify({ spdxVersion: "SPDX-2.2", name: "busybox" }));
  writeFileSync(join(docs, "index.json"), JSON.stringify({ documents: [] }));
  mkdirSync(deploy, { recursive: true });
  execFileSync("sh", ["-c", `tar -C "$1" -cf - . | zstd -q -o "$2"`, "sh", docs, join(deploy, `${imageName}.spdx.tar.zst`)]);
  symlinkSync(`${imageName}.spdx.tar.zst`, join(deploy, `${linkName}.spdx.tar.zst`));
  giveToTaskUser(deploy);
}

/** The image of an OCI archive unpacked by umoci, as root (so owners, devices and capabilities are real). */
async function unpackOciArchive(
  archive: string,
  tag: string,
  into: string,
): Promise<{ rootfs: string; manifest: Record<string, unknown> }> {
  const layout = join(into, "layout");
  mkdirSync(layout, { recursive: true });
  await runOk("tar", ["-xf", archive, "-C", layout]);
  await runOk("umoci", ["unpack", "--image", `${layout}:${tag}`, join(into, "bundle")]);
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const top = index.manifests.find(
    (m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"] === tag,
  );
  const manifest = JSON.parse(readFileSync(join(layout, "blobs/sha256", top.digest.slice(7)), "utf8"));
  return { rootfs: join(into, "bundle", "rootfs"), manifest: { ...manifest, digest: top.digest, index } };
}

/** The rootfs properties every image must keep, checked on an unpacked copy. */
async function assertRootfsKept(rootfs: string): Promise<void> {
  const data = statSync(join(rootfs, "home/app/data.txt"));
  assert.deepEqual([data.uid, data.gid], [1234, 567], "owner 1234:567 kept");
  assert.equal(statSync(join(rootfs, "usr/bin/su")).mode & 0o7777, 0o4755, "setuid kept");
  assert.match(await runOk("getcap", [join(rootfs, "usr/bin/ping")]), /cap_net_raw[=+]ep/, "file capability (xattr) kept");
  const console = statSync(join(rootfs, "dev/console"));
  assert.ok(console.isCharacterDevice(), "device node kept");
  assert.equal(console.rdev, (5 << 8) | 1);
  assert.equal(statSync(join(rootfs, "opt/app/run")).ino, statSync(join(rootfs, "opt/app/run-link")).ino, "hard link kept");
  assert.equal(statSync(join(rootfs, "opt/app/run")).mtimeMs, Number(epoch) * 1000);
}

describe("meta-ocify class: IMAGE_CMD and do_ocify_push run as bitbake runs them", () => {
  let root: string;
  let engine: DockerEngine | undefined;
  let registry: TestRegistry;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "ocify-yocto-"));
    giveToTaskUser(root);
    makeHostTools(join(root, "hosttools"));
    mkdirSync(join(root, "tmp"));
    giveToTaskUser(join(root, "tmp"));
    writeFileSync(join(root, "make-rootfs.sh"), makeRootfs, { mode: 0o644 });
    [engine, registry] = await Promise.all([startDockerEngine(), startRegistry()]);
  });
  after(async () => {
    await Promise.all([engine?.stop(), registry?.stop()]);
    rmSync(root, { recursive: true, force: true });
  });

  it("ocify-oci under pseudo: owners, setuid, capability, device, hard link, config, layers and SBOM in the archive", async () => {
    const build = newBuild(root, "oci", {
      OCIFY_IMAGE_LAYERS: "app:/opt/app",
      OCIFY_IMAGE_CMD: '["/opt/app/run", "--port", "80 80"]',
      OCIFY_IMAGE_ENV_VARS: "MODE=prod GREETING=it's",
      OCIFY_IMAGE_LABELS: "org.example.team=core",
      OCIFY_IMAGE_PORTS: "8080/tcp",
      OCIFY_IMAGE_USER: "1234:567",
      OCIFY_IMAGE_WORKINGDIR: "/home/app",
      OCIFY_IMAGE_STOPSIGNAL: "SIGTERM",
      OCIFY_IMAGE_AUTHOR: "Yocto Builder <builder@example.com>",
    });
    writeScarthgapSbom(build.vars.IMGDEPLOYDIR as string);
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    // do_rootfs and do_image_* are two pseudo sessions sharing one database, as in bitbake.
    const rootfs = await runTask(build, fake, "do_rootfs", `${rootfsSetup(build)}\ttrue`);
    assert.equal(rootfs.code, 0, rootfs.stderr + rootfs.stdout);
    const result = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"));
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const inspect = JSON.parse(await runOk("skopeo", ["inspect", "--config", `oci-archive:${archive}:latest`]));
    assert.equal(inspect.architecture, "amd64");
    assert.equal(inspect.os, "linux");
    assert.equal(inspect.author, "Yocto Builder <builder@example.com>");
    assert.equal(inspect.created, new Date(Number(epoch) * 1000).toISOString().replace(".000Z", "Z"));
    assert.deepEqual(inspect.config.Cmd, ["/opt/app/run", "--port", "80 80"]);
    assert.deepEqual(inspect.config.Env, ["MODE=prod", "GREETING=it's"]);
    assert.deepEqual(inspect.config.Labels, { "org.example.team": "core" }, "no build date or other label added");
    assert.deepEqual(inspect.config.ExposedPorts, { "8080/tcp": {} });
    assert.equal(inspect.config.User, "1234:567");
    assert.equal(inspect.config.WorkingDir, "/home/app");
    assert.equal(inspect.config.StopSignal, "SIGTERM");
    const { rootfs: unpacked, manifest } = await unpackOciArchive(archive, "latest", join(build.dir, "check"));
    await assertRootfsKept(unpacked);
    assert.equal((manifest.layers as unknown[]).length, 2, "the rest of the rootfs, then the app layer");
    // The SBOM: a referrer in index.json, the image's own document first.
    const index = manifest.index as { manifests: { digest: string; artifactType?: string }[] };
    const sbom = index.manifests.find((m) => m.artifactType === "application/spdx+json");
    assert.ok(sbom, "the SBOM is listed in index.json");
    const layout = join(build.dir, "check", "layout");
    const artifact = JSON.parse(readFileSync(join(layout, "blobs/sha256", (sbom?.digest ?? "").slice(7)), "utf8"));
    assert.equal(artifact.subject.digest, manifest.digest);
    assert.deepEqual(
      artifact.layers.map((l: { annotations: Record<string, string> }) => l.annotations["org.opencontainers.image.title"]),
      [`${imageName}.spdx.json`, "busybox.spdx.json"],
    );
    assert.deepEqual(readdirSync(build.vars.IMGDEPLOYDIR as string).sort(), [
      `${imageName}.ocify-oci`,
      `${imageName}.spdx.tar.zst`,
      `${linkName}.spdx.tar.zst`,
    ]);
  });

  it("ocify-docker under fakeroot (one session): docker load and docker run see the rootfs's owners, setuid and hard link", async (t) => {
    const build = newBuild(root, "docker", { OCIFY_IMAGE_CMD: "/bin/sh" });
    const fake: FakeRoot = { kind: "fakeroot" };
    // fakeroot keeps xattrs only within a session: the rootfs is made in the image task's session.
    const result = await runTask(build, fake, "do_image_ocify_docker", imageTaskBody("ocify-docker"), rootfsSetup(build));
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-docker`);
    const inspect = JSON.parse(await runOk("skopeo", ["inspect", "--config", `docker-archive:${archive}`]));
    assert.equal(inspect.architecture, "amd64");
    if (!engine) return t.skip(`Docker engine could not start: ${dockerEngineUnavailableReason()}`);
    const load = await engine.docker(["load", "-i", archive]);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /core-image-minimal:latest/);
    const stat = await engine.docker([
      "run",
      "--rm",
      "--network",
      "none",
      "core-image-minimal:latest",
      "stat",
      "-c",
      "%n %u:%g %a %i",
      "/home/app/data.txt",
      "/usr/bin/su",
      "/opt/app/run",
      "/opt/app/run-link",
    ]);
    assert.equal(stat.code, 0, stat.stderr);
    const lines = stat.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    assert.deepEqual(lines[0]?.slice(0, 2), ["/home/app/data.txt", "1234:567"]);
    assert.deepEqual(lines[1]?.slice(0, 3), ["/usr/bin/su", "0:0", "4755"]);
    assert.equal(lines[2]?.[3], lines[3]?.[3], "hard link: one inode");
  });

  it("is reproducible: the same rootfs in another build directory gives the same manifest digest", async () => {
    const digests: string[] = [];
    for (const name of ["repro-a", "repro-b"]) {
      const build = newBuild(root, name, { OCIFY_IMAGE_LAYERS: "app:/opt/app" });
      const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
      const result = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
      assert.equal(result.code, 0, result.stderr + result.stdout);
      const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
      digests.push(sha256(await runOk("skopeo", ["inspect", "--raw", `oci-archive:${archive}:latest`])));
    }
    assert.equal(digests[0], digests[1]);
  });

  it("platform variant: an armv7 tune's image says linux/arm/v7 (umoci cannot set it); aarch64 gives v8", async () => {
    const arm64 = newBuild(root, "aarch64", { TARGET_ARCH: "aarch64", TUNE_FEATURES: "aarch64", OCIFY_IMAGE_ARCH: "arm64" });
    assert.equal(expandClass(arm64.vars, ["OCIFY_PLATFORM"]).vars.OCIFY_PLATFORM, "linux/arm64/v8");
    // oe.go.map_arch("arm") is "arm" (npm run test:yocto runs the real one).
    const build = newBuild(root, "armv7", {
      TARGET_ARCH: "arm",
      TUNE_FEATURES: "arm vfp thumb armv7a neon callconvention-hard",
      OCIFY_IMAGE_ARCH: "arm",
    });
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const result = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", `oci-archive:${archive}:latest`]));
    assert.deepEqual([config.os, config.architecture, config.variant], ["linux", "arm", "v7"]);
  });

  it("OCIFY naming node and ocify.js by absolute path: the task needs neither as a host tool", async () => {
    const tools = makeHostTools(join(root, "hosttools-plain"));
    for (const tool of ["node", "ocify"]) rmSync(join(tools, tool));
    const build = newBuild(root, "absolute", { OCIFY: `${process.execPath} ${ocifyBin}` });
    build.env.PATH = tools;
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const result = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const config = JSON.parse(await runOk("skopeo", ["inspect", "--config", `oci-archive:${archive}:latest`]));
    assert.deepEqual([config.os, config.architecture], ["linux", "amd64"]);
    // The same PATH with the default OCIFY: the one line says where ocify should have been.
    const bare = newBuild(root, "no-tool", {});
    bare.env.PATH = tools;
    const bareFake: FakeRoot = { kind: "pseudo", stateDir: join(bare.dir, "pseudo") };
    const missing = await runTask(bare, bareFake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(bare));
    assert.notEqual(missing.code, 0);
    const errors = `${missing.stdout}${missing.stderr}`.split("\n").filter((l) => l.startsWith("ERROR: "));
    assert.equal(errors.length, 1, missing.stdout + missing.stderr);
    assert.match(errors[0] as string, /is ocify in HOSTTOOLS/);
  });

  it("a failure is one ERROR line in the task log, naming what went wrong, and leaves no image", async () => {
    const build = newBuild(root, "fail", { OCIFY_IMAGE_BASE: "oci-archive:/nonexistent/base.tar" });
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const result = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.notEqual(result.code, 0);
    const errors = `${result.stdout}${result.stderr}`.split("\n").filter((l) => l.startsWith("ERROR: "));
    assert.equal(errors.length, 1, result.stdout + result.stderr);
    assert.match(errors[0] as string, /^ERROR: ocify: .*\/nonexistent\/base\.tar/);
    assert.equal(existsSync(join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`)), false);
  });

  it("a registry base: do_ocify_fetch_base fetches it, the image task builds on it with the registry gone", async () => {
    const baseRegistry = await startRegistry();
    const layout = join(root, "registry-base-layout");
    const baseRef = `${baseRegistry.host}/base/busybox:1`;
    let baseLayers: string[];
    const build = newBuild(root, "registry-base", { OCIFY_IMAGE_BASE: baseRef });
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    try {
      const digest = writeBaseImageLayout(layout, "latest");
      baseLayers = JSON.parse(readFileSync(join(layout, "blobs/sha256", digest.slice(7)), "utf8")).layers.map(
        (l: { digest: string }) => l.digest,
      );
      await pushOciLayout(layout, "latest", baseRef);
      const fetch = await runTask(build, fake, "do_ocify_fetch_base", undefined, `\tmkdir -p "${build.vars.T}" "${build.env.HOME}"\n`);
      assert.equal(fetch.code, 0, fetch.stderr + fetch.stdout);
    } finally {
      await baseRegistry.stop();
    }
    const image = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(image.code, 0, image.stderr + image.stdout);
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const manifest = JSON.parse(await runOk("skopeo", ["inspect", "--raw", `oci-archive:${archive}:latest`]));
    const layers = manifest.layers.map((l: { digest: string }) => l.digest);
    assert.deepEqual(layers.slice(0, -1), baseLayers, "the base's layers, then the rootfs's");
    assert.equal(layers.length, baseLayers.length + 1);
  });

  it("a recipe base: the other image's deployed OCI archive (its SBOM beside it), the image tagged latest in it", async () => {
    const first = newBuild(root, "recipe-base-1", {});
    writeScarthgapSbom(first.vars.IMGDEPLOYDIR as string);
    const fake1: FakeRoot = { kind: "pseudo", stateDir: join(first.dir, "pseudo") };
    const one = await runTask(first, fake1, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(first));
    assert.equal(one.code, 0, one.stderr + one.stdout);
    const firstArchive = join(first.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const build = newBuild(root, "recipe-base-2", { OCIFY_IMAGE_BASE: "core-image-base" });
    // core-image-base's do_image_complete deployed its archive and linked it by its IMAGE_LINK_NAME.
    mkdirSync(build.vars.DEPLOY_DIR_IMAGE as string, { recursive: true });
    await runOk("cp", [firstArchive, join(build.vars.DEPLOY_DIR_IMAGE as string, "core-image-base-qemux86-64.rootfs.ocify-oci")]);
    giveToTaskUser(build.vars.DEPLOY_DIR_IMAGE as string);
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const two = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(two.code, 0, two.stderr + two.stdout);
    const baseManifest = JSON.parse(await runOk("skopeo", ["inspect", "--raw", `oci-archive:${firstArchive}:latest`]));
    const archive = join(build.vars.IMGDEPLOYDIR as string, `${imageName}.ocify-oci`);
    const manifest = JSON.parse(await runOk("skopeo", ["inspect", "--raw", `oci-archive:${archive}:latest`]));
    const digests = (m: { layers: { digest: string }[] }) => m.layers.map((l) => l.digest);
    assert.deepEqual(digests(manifest).slice(0, -1), digests(baseManifest));
  });

  it("do_ocify_sbom (wrynose): the SBOM written after do_image_complete joins the deployed archive, found through the links", async () => {
    const build = newBuild(root, "sbom", {});
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const image = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(image.code, 0, image.stderr + image.stdout);
    assert.doesNotMatch(image.stdout, /no SBOM/, "the image task says nothing of an SBOM that comes later");
    deployImage(build);
    // do_create_image_sbom_spdx, in a run of its own minute: ${IMAGE_NAME}.spdx.json and its link.
    const deploy = build.vars.DEPLOY_DIR_IMAGE as string;
    const sbomName = `${linkName}-20260101000300.spdx.json`;
    writeFileSync(join(deploy, sbomName), JSON.stringify({ "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld" }));
    symlinkSync(sbomName, join(deploy, `${linkName}.spdx.json`));
    giveToTaskUser(join(deploy, sbomName));
    const task = await runTask({ ...build, vars: { ...build.vars, IMAGE_NAME: laterImageName } }, fake, "do_ocify_sbom", undefined);
    assert.equal(task.code, 0, task.stderr + task.stdout);
    assert.ok(lstatSync(join(deploy, `${linkName}.ocify-oci`)).isSymbolicLink(), "the link is still a link");
    const { manifest } = await unpackOciArchive(join(deploy, `${imageName}.ocify-oci`), "latest", join(build.dir, "check"));
    const index = manifest.index as { manifests: { digest: string; artifactType?: string }[] };
    const sbom = index.manifests.find((m) => m.artifactType === "application/spdx+json");
    assert.ok(sbom, "the deployed archive lists the SBOM");
    const artifact = JSON.parse(readFileSync(join(build.dir, "check", "layout", "blobs/sha256", (sbom?.digest ?? "").slice(7)), "utf8"));
    assert.equal(artifact.subject.digest, manifest.digest);
    assert.equal(artifact.layers[0].annotations["org.opencontainers.image.title"], sbomName, "the document's own (dated) name");
  });

  it("do_ocify_push takes credentials from the build user's ~/.docker/config.json, none from the metadata", async () => {
    const user = { username: "yocto", password: "s3cret-pass" };
    const locked = await startRegistry({ htpasswd: user });
    try {
      const ref = `${locked.host}/yocto/core-image-minimal:1`;
      const build = newBuild(root, "push-auth", { OCIFY_PUSH_REF: ref });
      writeScarthgapSbom(build.vars.IMGDEPLOYDIR as string);
      const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
      const image = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
      assert.equal(image.code, 0, image.stderr + image.stdout);
      deployImage(build);
      // No credentials anywhere: the task fails with ocify's one line.
      const refused = await runTask(build, fake, "do_ocify_push", undefined);
      assert.notEqual(refused.code, 0);
      const errors = `${refused.stdout}${refused.stderr}`.split("\n").filter((l) => l.startsWith("ERROR: "));
      assert.equal(errors.length, 1, refused.stdout + refused.stderr);
      assert.match(errors[0] as string, /^ERROR: ocify: .*authentication required \(log in with ocify login /);
      // The build user's docker config (HOME is passed to tasks by bitbake): the push and the SBOM go through.
      const config = join(build.env.HOME as string, ".docker");
      mkdirSync(config, { recursive: true });
      const auth = Buffer.from(`${user.username}:${user.password}`).toString("base64");
      writeFileSync(join(config, "config.json"), JSON.stringify({ auths: { [locked.host]: { auth } } }), { mode: 0o600 });
      for (const path of [config, join(config, "config.json")]) giveToTaskUser(path);
      const push = await runTask(build, fake, "do_ocify_push", undefined);
      assert.equal(push.code, 0, push.stderr + push.stdout);
      assert.doesNotMatch(push.stdout + push.stderr, /s3cret-pass|eW9jdG86czNjcmV0LXBhc3M/, "the credentials are not in the task log");
      const creds = ["--tls-verify=false", "--creds", `${user.username}:${user.password}`];
      const manifest = await runOk("skopeo", ["inspect", "--raw", ...creds, `docker://${ref}`]);
      const tag = `sha256-${sha256(manifest).slice(7)}`;
      const index = JSON.parse(
        await runOk("skopeo", ["inspect", "--raw", ...creds, `docker://${locked.host}/yocto/core-image-minimal:${tag}`]),
      );
      assert.equal(index.manifests.length, 1, "the SBOM is attached with the same credentials");
    } finally {
      await locked.stop();
    }
  });

  it("do_ocify_push pushes the archive and attaches the SBOM, listed in the referrers tag index", async () => {
    const ref = `${registry.host}/yocto/core-image-minimal:1`;
    const build = newBuild(root, "push", { OCIFY_PUSH_REF: ref });
    writeScarthgapSbom(build.vars.IMGDEPLOYDIR as string);
    const fake: FakeRoot = { kind: "pseudo", stateDir: join(build.dir, "pseudo") };
    const image = await runTask(build, fake, "do_image_ocify_oci", imageTaskBody("ocify-oci"), rootfsSetup(build));
    assert.equal(image.code, 0, image.stderr + image.stdout);
    deployImage(build);
    // bitbake -c ocify_push in a later run: IMAGE_NAME names no file, the link does.
    const push = await runTask({ ...build, vars: { ...build.vars, IMAGE_NAME: laterImageName } }, fake, "do_ocify_push", undefined);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    const manifest = await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]);
    const tag = `sha256-${sha256(manifest).slice(7)}`;
    const index = JSON.parse(
      await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/yocto/core-image-minimal:${tag}`]),
    );
    assert.deepEqual(
      index.manifests.map((m: { artifactType: string }) => m.artifactType),
      ["application/spdx+json"],
    );
  });
});
