/**
 * Images of the shapes real registries hold, generated for tests and pushed to a real registry with plain
 * distribution-spec requests (blobs, then manifests by digest or tag): nested indexes, attestation
 * manifests, layers with external URLs. Tools such as skopeo cannot push some of these shapes.
 */
import { createHash } from "node:crypto";
import { fixtureLayer } from "./schema1.js";

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** A manifest or index as bytes, with what an index entry needs. */
export interface RawPart {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** A generated image: its manifest, the blobs a registry must hold, and the blobs of its layers with URLs. */
export interface RawImage extends RawPart {
  blobs: Buffer[];
  /** Layers named with `urls` and not pushed: their content, to serve from those URLs. */
  external: Buffer[];
  config: Buffer;
  /** The digests of its layers, in order (a non-distributable one first). */
  layerDigests: string[];
}

/** Options of rawImage. */
export interface RawImageOptions {
  format?: "oci" | "docker";
  architecture?: string;
  variant?: string;
  /** Files of the image's one ordinary layer. */
  files?: Record<string, string>;
  /** Add a non-distributable layer (first, as Windows base layers come first) whose content lives at this URL. */
  externalAt?: (digest: string) => string;
}

/** A one- or two-layer image with a config naming its platform. */
export function rawImage(options: RawImageOptions = {}): RawImage {
  const docker = options.format === "docker";
  const layer = fixtureLayer(options.files ?? { "hello.txt": `hello ${options.architecture ?? "amd64"}\n` });
  const foreign = options.externalAt ? fixtureLayer({ "base.txt": "from elsewhere\n" }) : undefined;
  const layers = [...(foreign ? [foreign] : []), layer];
  const config = Buffer.from(
    JSON.stringify({
      architecture: options.architecture ?? "amd64",
      os: "linux",
      ...(options.variant ? { variant: options.variant } : {}),
      config: { Env: ["PATH=/bin"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    }),
  );
  const type = docker
    ? { manifest: "application/vnd.docker.distribution.manifest.v2+json", config: "application/vnd.docker.container.image.v1+json" }
    : { manifest: "application/vnd.oci.image.manifest.v1+json", config: "application/vnd.oci.image.config.v1+json" };
  const layerType = docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.oci.image.layer.v1.tar+gzip";
  const foreignType = docker
    ? "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    : "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
  const descriptors = layers.map((l) => ({
    mediaType: l === foreign ? foreignType : layerType,
    digest: l.digest,
    size: l.blob.length,
    ...(l === foreign && options.externalAt ? { urls: [options.externalAt(l.digest)] } : {}),
  }));
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: type.manifest,
      config: { mediaType: type.config, digest: sha256(config), size: config.length },
      layers: descriptors,
    }),
  );
  return {
    bytes,
    mediaType: type.manifest,
    digest: sha256(bytes),
    blobs: [config, layer.blob],
    external: foreign ? [foreign.blob] : [],
    config,
    layerDigests: layers.map((l) => l.digest),
  };
}

/** An index entry of a part. */
export function entry(part: RawPart, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mediaType: part.mediaType, digest: part.digest, size: part.bytes.length, ...extra };
}

/** An OCI index of the given entries. */
export function rawIndex(entries: Record<string, unknown>[], mediaType = "application/vnd.oci.image.index.v1+json"): RawPart {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: entries }));
  return { bytes, mediaType, digest: sha256(bytes) };
}

/** An attestation manifest for `subject` as buildx writes it: an OCI manifest with one in-toto layer. */
export function attestation(subject: RawPart): { manifest: RawPart; blobs: Buffer[]; entry: Record<string, unknown> } {
  const statement = Buffer.from(JSON.stringify({ _type: "https://in-toto.io/Statement/v0.1", subject: [{ digest: subject.digest }] }));
  const config = Buffer.from(
    JSON.stringify({ architecture: "unknown", os: "unknown", config: {}, rootfs: { type: "layers", diff_ids: [sha256(statement)] } }),
  );
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: [{ mediaType: "application/vnd.in-toto+json", digest: sha256(statement), size: statement.length }],
    }),
  );
  const manifest = { bytes, mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256(bytes) };
  const annotations = { "vnd.docker.reference.digest": subject.digest, "vnd.docker.reference.type": "attestation-manifest" };
  return {
    manifest,
    blobs: [config, statement],
    entry: entry(manifest, { platform: { architecture: "unknown", os: "unknown" }, annotations }),
  };
}

/** Upload a blob to a registry (`http://HOST:PORT`) in one monolithic PUT. */
export async function pushRawBlob(registryUrl: string, repository: string, blob: Buffer): Promise<void> {
  const started = await fetch(`${registryUrl}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  if (started.status !== 202) throw new Error(`starting an upload: HTTP ${started.status} ${await started.text()}`);
  const location = new URL(started.headers.get("location") as string, registryUrl);
  location.searchParams.set("digest", sha256(blob));
  const put = await fetch(location, { method: "PUT", body: blob, headers: { "content-type": "application/octet-stream" } });
  if (put.status !== 201) throw new Error(`uploading a blob: HTTP ${put.status} ${await put.text()}`);
}

/** Store a manifest under `reference` (a tag, or its digest). */
export async function pushRawManifest(registryUrl: string, repository: string, reference: string, part: RawPart): Promise<void> {
  const put = await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, {
    method: "PUT",
    body: part.bytes,
    headers: { "content-type": part.mediaType },
  });
  if (put.status !== 201) throw new Error(`putting manifest ${reference}: HTTP ${put.status} ${await put.text()}`);
}

/** Push an image's blobs and its manifest (by digest, and under `tag` when given). */
export async function pushRawImage(registryUrl: string, repository: string, image: RawImage, tag?: string): Promise<void> {
  for (const blob of image.blobs) await pushRawBlob(registryUrl, repository, blob);
  await pushRawManifest(registryUrl, repository, tag ?? image.digest, image);
}
