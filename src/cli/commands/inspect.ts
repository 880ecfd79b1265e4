/** `ocify inspect REF`: a readable summary, or the raw manifest / config / JSON for scripts. */
import { type ImageInfo, type InspectResult, inspect, UsageError } from "../../index.js";
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

/** An index entry as listed: platform, digest, and whether it is an index itself. */
function platformLine(p: { platform: string; digest: string; index: boolean }): string {
  return `${p.platform} ${p.digest}${p.index ? " (index)" : ""}`;
}

/** The JSON summary `--json` prints. */
function summaryOf(result: InspectResult, image: ImageInfo): Record<string, unknown> {
  return {
    name: result.name,
    mediaType: result.mediaType,
    digest: result.digest,
    ...(image.convertedFrom ? { convertedFrom: image.convertedFrom } : {}),
    ...(result.platforms ? { platforms: result.platforms.map(platformLine), imageDigest: image.digest } : {}),
    platform: image.platform,
    created: image.created,
    config: image.config,
    configDigest: image.configDigest,
    layers: image.layers,
    annotations: image.annotations,
  };
}

/** The readable summary. */
function textOf(result: InspectResult, image: ImageInfo): string {
  const c = image.config;
  const lines = [
    `Name:        ${result.name}`,
    `MediaType:   ${result.mediaType}`,
    `Digest:      ${result.digest}`,
    ...(image.convertedFrom ? [`Converted:   from ${image.convertedFrom.mediaType} ${image.convertedFrom.digest}`] : []),
    ...(result.platforms ? [`Platforms:   ${result.platforms.map((p) => p.platform).join(", ")}`, `Image:       ${image.digest}`] : []),
    `Platform:    ${image.platform}`,
    `Created:     ${image.created ?? "-"}`,
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
    `Layers (${image.layers.length}, ${size(image.layers.reduce((n, l) => n + l.size, 0))}):`,
    ...image.layers.map((l) => `  ${l.digest}  ${size(l.size).padStart(10)}  ${l.mediaType}`),
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
  const result = await inspect(positionals[0] as string, {
    insecureRegistries: values["insecure-registry"] ?? [],
    signal,
    credentials: await credentialChain(values, registriesOf(positionals)),
    registryMirrors: values["registry-mirror"] ?? [],
    platform: platformFlag(values.platform),
    describeImage: !values.raw,
    // Without --platform, --config or --json, an index is described by its entries alone.
    imageOfIndex: Boolean(values.config || values.json),
  });
  const image = result.image;
  if (values.raw || !image) {
    if (values.raw) process.stdout.write(result.manifest);
    else {
      process.stdout.write(`Name:       ${result.name}\nMediaType:  ${result.mediaType}\nDigest:     ${result.digest}\nPlatforms:\n`);
      for (const p of result.platforms ?? []) process.stdout.write(`  ${platformLine(p)}\n`);
    }
    return 0;
  }
  if (values.config) process.stdout.write(`${image.rawConfig.toString("utf8")}\n`);
  else if (values.json) process.stdout.write(`${JSON.stringify(summaryOf(result, image), null, 2)}\n`);
  else process.stdout.write(textOf(result, image));
  return 0;
}
