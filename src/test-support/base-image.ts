/**
 * Test fixtures: a small base image generated on the fly (never committed), written as an OCI layout that
 * skopeo can push to a test registry. When Debian's busybox-static is installed the rootfs holds a real
 * static busybox, so `docker run` can execute the result; otherwise only generated files.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export const busyboxPath = "/bin/busybox";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A deterministic tar of a directory made with GNU tar (an independent writer, good as a fixture source). */
export function gnuTar(dir: string): Buffer {
  return execFileSync(
    "tar",
    [
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--format=posix",
      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
      "-C",
      dir,
      "-cf",
      "-",
      ".",
    ],
    { maxBuffer: 1 << 30 },
  );
}

export interface BaseImageOptions {
  /** Manifest family of the generated image. */
  format?: "oci" | "docker";
  architecture?: string;
  /** The config's `variant` (none by default). */
  variant?: string;
  /** Extra environment entries in the config. */
  env?: string[];
  /** Seed for generated file contents. */
  seed?: number;
  /** More top-level config fields (a legacy `container_config`, a vendor's extension). */
  extraConfig?: Record<string, unknown>;
}

/**
 * Write a one-layer base image into an OCI layout at `layoutDir` under tag `tag`, returning the manifest digest.
 * The rootfs has /bin/busybox (when available) with sh/ls/cat links, /etc/os-release and a PATH in the config.
 */
export function writeBaseImageLayout(layoutDir: string, tag = "latest", options: BaseImageOptions = {}): string {
  const format = options.format ?? "oci";
  const root = mkdtempSync(join(tmpdir(), "ocify-base-"));
  try {
    mkdirSync(join(root, "bin"), { recursive: true });
    mkdirSync(join(root, "etc"));
    mkdirSync(join(root, "tmp"));
    writeFileSync(join(root, "etc/os-release"), `NAME=ocify-test-base\nSEED=${options.seed ?? 0}\n`);
    if (existsSync(busyboxPath)) {
      writeFileSync(join(root, "bin/busybox"), readFileSync(busyboxPath), { mode: 0o755 });
      for (const applet of ["sh", "ls", "cat", "id", "pwd", "env", "stat", "readlink", "sleep"]) {
        symlinkSync("busybox", join(root, "bin", applet));
      }
    }
    const tar = gnuTar(root);
    const layer = gzipSync(tar, { level: 6 });
    const diffID = `sha256:${sha256(tar)}`;
    const config = Buffer.from(
      JSON.stringify({
        created: "1970-01-01T00:00:00Z",
        architecture: options.architecture ?? "amd64",
        ...(options.variant ? { variant: options.variant } : {}),
        os: "linux",
        config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...(options.env ?? [])], Cmd: ["/bin/sh"] },
        rootfs: { type: "layers", diff_ids: [diffID] },
        history: [{ created: "1970-01-01T00:00:00Z", created_by: "ocify test fixture" }],
        ...options.extraConfig,
      }),
    );
    const types =
      format === "docker"
        ? {
            manifest: "application/vnd.docker.distribution.manifest.v2+json",
            config: "application/vnd.docker.container.image.v1+json",
            layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
          }
        : {
            manifest: "application/vnd.oci.image.manifest.v1+json",
            config: "application/vnd.oci.image.config.v1+json",
            layer: "application/vnd.oci.image.layer.v1.tar+gzip",
          };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: types.config, digest: `sha256:${sha256(config)}`, size: config.length },
        layers: [{ mediaType: types.layer, digest: `sha256:${sha256(layer)}`, size: layer.length }],
      }),
    );
    const blobs = join(layoutDir, "blobs", "sha256");
    mkdirSync(blobs, { recursive: true });
    for (const blob of [layer, config, manifest]) writeFileSync(join(blobs, sha256(blob)), blob);
    writeFileSync(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const digest = `sha256:${sha256(manifest)}`;
    writeFileSync(
      join(layoutDir, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          { mediaType: types.manifest, digest, size: manifest.length, annotations: { "org.opencontainers.image.ref.name": tag } },
        ],
      }),
    );
    return digest;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Write a multi-platform base (an OCI index of one image per architecture) into an OCI layout under `tag`;
 * returns the index digest. Each image's /etc/os-release names its architecture.
 */
export function writeMultiArchLayout(layoutDir: string, tag = "latest", architectures: readonly string[] = ["amd64", "arm64"]): string {
  const entries = architectures.map((architecture, i) => {
    const scratch = mkdtempSync(join(tmpdir(), "ocify-arch-"));
    try {
      const digest = writeBaseImageLayout(scratch, "x", { architecture, seed: i + 1 });
      // Move the image's blobs into the shared layout.
      const blobs = join(layoutDir, "blobs", "sha256");
      mkdirSync(blobs, { recursive: true });
      const index = JSON.parse(readFileSync(join(scratch, "index.json"), "utf8")) as { manifests: { mediaType: string; size: number }[] };
      for (const name of execFileSync("ls", [join(scratch, "blobs", "sha256")], { encoding: "utf8" })
        .trim()
        .split("\n")) {
        writeFileSync(join(blobs, name), readFileSync(join(scratch, "blobs", "sha256", name)));
      }
      const entry = index.manifests[0] as { mediaType: string; size: number };
      return {
        mediaType: entry.mediaType,
        digest,
        size: entry.size,
        platform: { architecture, os: "linux", ...(architecture === "arm64" ? { variant: "v8" } : {}) },
      };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
  const indexBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: entries }),
  );
  const digest = `sha256:${sha256(indexBytes)}`;
  writeFileSync(join(layoutDir, "blobs", "sha256", sha256(indexBytes)), indexBytes);
  writeFileSync(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layoutDir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest,
          size: indexBytes.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  return digest;
}
