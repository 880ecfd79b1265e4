/**
 * Local faults on the real CLI: a full disk under the output or the cache, a read-only cache or output
 * directory. Each ends with one line and exit 1, leaves no temp file, keeps an existing layout as it was,
 * and leaves the cache consistent (the next build, with room, makes the clean build's image). Full and
 * read-only file systems are small tmpfs mounts in a private mount namespace (`unshare -m`, or `-r -m`
 * for a user without root), so nothing outside the test changes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ocifyBin, runOcify } from "../test-support/cli.js";
import { writeSeededFile } from "../test-support/seeded.js";

/** How to enter a private mount namespace here, or why it cannot be done. */
function namespaceArgs(): string[] | string {
  const tries = process.getuid?.() === 0 ? [["-m"], ["-r", "-m"]] : [["-r", "-m"]];
  for (const args of tries) {
    const probe = spawnSync("unshare", [...args, "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp"], {
      encoding: "utf8",
    });
    if (probe.status === 0) return args;
  }
  return "this kernel or container allows no private mount namespace (unshare -m / -r -m)";
}

const unshare = namespaceArgs();

describe("local faults: full and read-only file systems", { skip: typeof unshare === "string" ? unshare : false }, () => {
  let work: string;
  let artifacts: string;
  let n = 0;
  const env = { SOURCE_DATE_EPOCH: "1700000000", OCIFY_CACHE_MAX_SIZE: "off" };
  const ocify = (args: string): string => `"${process.execPath}" "${ocifyBin}" ${args} -q`;
  const layer = () => `build --from scratch --layer ${artifacts}:/app`;

  /** Run a shell script in a private mount namespace; its lines `key=value` come back as a record. */
  function inNamespace(script: string): Record<string, string> {
    const result = spawnSync("unshare", [...(unshare as string[]), "sh", "-c", `set -u\n${script}`], {
      encoding: "utf8",
      env: { ...process.env, ...env },
    });
    const out: Record<string, string> = {};
    for (const line of result.stdout.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return out;
  }

  /** A fresh directory to mount on, and files for the run's stderr. */
  function place(): { mount: string; err: string } {
    const dir = join(work, `case-${++n}`);
    mkdirSync(join(dir, "mnt"), { recursive: true });
    return { mount: join(dir, "mnt"), err: join(dir, "stderr") };
  }

  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-local-faults-"));
    artifacts = join(work, "artifacts");
    mkdirSync(artifacts);
    writeSeededFile(join(artifacts, "big.bin"), 12 << 20, 3);
    writeFileSync(join(artifacts, "small.txt"), "small\n");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("a full disk under the archive: one line, exit 1, nothing left there", () => {
    const { mount, err } = place();
    const out = inNamespace(`
      mount -t tmpfs -o size=4m tmpfs ${mount}
      OCIFY_CACHE_DIR=${join(work, "cache-a")} ${ocify(`${layer()} -t docker-archive:${mount}/out.tar`)} 2>${err}
      echo code=$?
      echo left=$(ls -A ${mount} | tr '\\n' ' ')`);
    assert.equal(out.code, "1");
    assert.match(readFileSync(err, "utf8"), /^ocify: [^\n]*cannot write \S*out\.tar: no space left on the device \([^\n]*\)\n$/);
    assert.equal(out.left?.trim(), "");
  });

  it("a full disk under the cache: one line, exit 1, no temp file; with room again the same image as a clean build", async () => {
    const { mount, err } = place();
    const clean = await runOcify([...layer().split(" "), "-q", "-t", `oci:${join(work, `clean-${n}`)}`], {
      env: { ...env, OCIFY_CACHE_DIR: join(work, `clean-cache-${n}`) },
    });
    assert.equal(clean.code, 0, clean.stderr);
    const out = inNamespace(`
      mount -t tmpfs -o size=4m tmpfs ${mount}
      OCIFY_CACHE_DIR=${mount} ${ocify(`${layer()} -t oci:${join(work, `full-${n}`)}`)} 2>${err}
      echo code=$?
      echo temps=$(find ${mount} -name '.*.tmp' | wc -l)
      mount -o remount,size=64m ${mount}
      echo digest=$(OCIFY_CACHE_DIR=${mount} ${ocify(`${layer()} -t oci:${join(work, `roomy-${n}`)}`)} | cut -d' ' -f1)`);
    assert.equal(out.code, "1");
    assert.match(readFileSync(err, "utf8"), /^ocify: cannot write \S*mnt\/blocks: no space left on the device \([^\n]*\)\n$/);
    assert.equal(out.temps, "0");
    assert.equal(out.digest, clean.stdout.split(" ")[0]);
    assert.throws(() => readdirSync(join(work, `full-${n}`)), /ENOENT/, "no layout from the failed build");
  });

  it("a read-only cache, and a read-only output directory: one line each, exit 1", () => {
    const { mount, err } = place();
    const out = inNamespace(`
      mount -t tmpfs -o ro tmpfs ${mount}
      OCIFY_CACHE_DIR=${mount}/cache ${ocify(`${layer()} -t docker-archive:${join(work, `ro-${n}.tar`)}`)} 2>${err}.cache
      echo cache=$?
      OCIFY_CACHE_DIR=${join(work, "cache-ro")} ${ocify(`${layer()} -t docker-archive:${mount}/out.tar`)} 2>${err}.out
      echo output=$?`);
    assert.equal(out.cache, "1");
    assert.match(readFileSync(`${err}.cache`, "utf8"), /^ocify: cannot create \S*mnt\/cache\S*: read-only file system \([^\n]*\)\n$/);
    assert.equal(out.output, "1");
    assert.match(readFileSync(`${err}.out`, "utf8"), /^ocify: cannot open \S*mnt\/out\.tar: read-only file system \([^\n]*\)\n$/);
  });

  it("a full disk under an existing OCI layout: the layout as it was", () => {
    const { mount, err } = place();
    const out = inNamespace(`
      mount -t tmpfs -o size=6m tmpfs ${mount}
      OCIFY_CACHE_DIR=${join(work, "cache-layout")} ${ocify(`build --from scratch --layer ${join(artifacts, "small.txt")}:/s -t oci:${mount}/layout:one`)} >/dev/null
      echo first=$?
      before=$(cd ${mount}/layout && find . -type f | sort | xargs md5sum | md5sum)
      OCIFY_CACHE_DIR=${join(work, "cache-layout")} ${ocify(`${layer()} -t oci:${mount}/layout:two`)} 2>${err}
      echo code=$?
      echo same=$([ "$before" = "$(cd ${mount}/layout && find . -type f | sort | xargs md5sum | md5sum)" ] && echo yes || echo no)
      echo entries=$(ls -A ${mount}/layout | tr '\\n' ' ')`);
    assert.equal(out.first, "0");
    assert.equal(out.code, "1");
    assert.match(readFileSync(err, "utf8"), /^ocify: [^\n]*no space left on the device[^\n]*\n$/);
    assert.equal(out.same, "yes");
    assert.equal(out.entries?.trim(), "blobs index.json oci-layout");
  });
});
