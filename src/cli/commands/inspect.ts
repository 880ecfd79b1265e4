/** `ocify inspect REF`: a readable summary, or the raw manifest / config / JSON for scripts. */
import { readBounded } from "../../bounded.js";
import type { Digest } from "../../digest.js";
import { UsageError } from "../../errors.js";
import { type ImageConfig, parseImageConfig } from "../../image/config.js";
import { formatPlatform, hostPlatform } from "../../image/descriptor.js";
import { type ImageManifest, maxManifestBytes, parseImageIndex, parseImageManifest, type RawManifest } from "../../image/manifest.js";
import { selectImage } from "../../image/select.js";
import { isIndexMediaType } from "../../media-types.js";
import { openSource, parseTransportReference } from "../../transport/transport.js";
import { helpRequested, parseFlags, platformFlag } from "../flags.js";
import { credentialChain, credentialFlags, registriesOf } from "../registry-flags.js";

export const help = `Usage: ocify inspect [OPTIONS] IMAGE

Show an image: media type, digest, platforms of an index, config highlights, layers with sizes.

  --raw                     print the manifest bytes exactly as stored (a Docker schema 1 manifest too,
                            which the other views show converted to schema 2)
  --config                  print the config JSON (of the --platform image for an index)
  --json                    print a JSON summary for scripts
  --platform OS/ARCH[/VARIANT]   the image to describe in an index (default: this host's)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry
  --creds USER[:PASS]       credentials for the registry (--password-stdin: the password from stdin)
  --registry-mirror [REGISTRY=]MIRROR  pull through this mirror first (no REGISTRY=: Docker Hub's)`;

function size(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

/** The summary as text, one field a line. */
function summaryText(
  summary: { name: string; mediaType: string; digest: string; platform: string; platforms?: string[] },
  config: ImageConfig,
  manifest: ImageManifest,
  image: RawManifest,
): string {
  const c = config.config ?? {};
  const platforms = summary.platforms;
  const lines = [
    `Name:        ${summary.name}`,
    `MediaType:   ${summary.mediaType}`,
    `Digest:      ${summary.digest}`,
    ...(image.convertedFrom ? [`Converted:   from ${image.convertedFrom.mediaType} ${image.convertedFrom.digest}`] : []),
    ...(platforms ? [`Platforms:   ${platforms.map((p) => p.split(" ")[0]).join(", ")}`, `Image:       ${image.digest}`] : []),
    `Platform:    ${summary.platform}`,
    `Created:     ${config.created ?? "-"}`,
    `Entrypoint:  ${JSON.stringify(c.Entrypoint ?? null)}`,
    `Cmd:         ${JSON.stringify(c.Cmd ?? null)}`,
    `WorkingDir:  ${c.WorkingDir ?? "-"}`,
    `User:        ${c.User ?? "-"}`,
    `Env:         ${(c.Env ?? []).join(" ") || "-"}`,
    `Ports:       ${Object.keys(c.ExposedPorts ?? {}).join(" ") || "-"}`,
    `Volumes:     ${Object.keys(c.Volumes ?? {}).join(" ") || "-"}`,
    `Labels:      ${
      Object.entries(c.Labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") || "-"
    }`,
    `Layers (${manifest.layers.length}, ${size(manifest.layers.reduce((n, l) => n + l.size, 0))}):`,
    ...manifest.layers.map((l) => `  ${l.digest}  ${size(l.size).padStart(10)}  ${l.mediaType}`),
  ];
  return `${lines.join("\n")}\n`;
}

/** Run the inspect command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    raw: { type: "boolean" },
    config: { type: "boolean" },
    json: { type: "boolean" },
    platform: { type: "string" },
    "insecure-registry": { type: "string", multiple: true },
    "registry-mirror": { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
    ...credentialFlags,
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 1) throw new UsageError("inspect needs one IMAGE", { hint: "see ocify inspect --help" });
  const source = await openSource(parseTransportReference(positionals[0] as string), {
    insecureRegistries: values["insecure-registry"] ?? [],
    signal,
    credentials: await credentialChain(values, registriesOf(positionals)),
    registryMirrors: values["registry-mirror"] ?? [],
  });
  try {
    const top = await source.getManifest();
    if (values.raw) {
      process.stdout.write((top.convertedFrom ?? top).bytes);
      return 0;
    }
    const platformWanted = platformFlag(values.platform);
    let image = top;
    let platforms: string[] | undefined;
    if (isIndexMediaType(top.mediaType)) {
      const index = parseImageIndex(top, `index of ${source.description}`);
      const kind = (m: (typeof index.manifests)[number]) => (isIndexMediaType(m.mediaType) ? " (index)" : "");
      platforms = index.manifests.map((m) => `${m.platform ? formatPlatform(m.platform) : "unknown"} ${m.digest}${kind(m)}`);
      // Without --platform and without --config, an index is described by its entries alone.
      if (!platformWanted && !values.config && !values.json) {
        process.stdout.write(`Name:       ${source.description}\nMediaType:  ${top.mediaType}\nDigest:     ${top.digest}\nPlatforms:\n`);
        for (const line of platforms) process.stdout.write(`  ${line}\n`);
        return 0;
      }
      const read = (digest: Digest) => source.getManifest(digest);
      image = (await selectImage(top, platformWanted ?? hostPlatform(), read, source.description)).manifest;
    }
    const manifest = parseImageManifest(image, `manifest of ${source.description}`);
    const configBytes = await readBounded(await source.getBlob(manifest.config), maxManifestBytes, `config of ${source.description}`);
    if (values.config) {
      process.stdout.write(`${configBytes.toString("utf8")}\n`);
      return 0;
    }
    const config = parseImageConfig(configBytes);
    const summary = {
      name: source.description,
      mediaType: top.mediaType,
      digest: top.digest,
      ...(image.convertedFrom ? { convertedFrom: { mediaType: image.convertedFrom.mediaType, digest: image.convertedFrom.digest } } : {}),
      ...(platforms ? { platforms, imageDigest: image.digest } : {}),
      platform: formatPlatform({
        os: config.os,
        architecture: config.architecture,
        ...(config.variant ? { variant: config.variant } : {}),
      }),
      created: config.created,
      config: config.config ?? {},
      configDigest: manifest.config.digest,
      layers: manifest.layers.map((l, i) => ({
        mediaType: l.mediaType,
        digest: l.digest,
        size: l.size,
        diffID: config.rootfs.diff_ids[i],
      })),
      annotations: manifest.annotations ?? {},
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(summaryText(summary, config, manifest, image));
    return 0;
  } finally {
    await source.close();
  }
}
