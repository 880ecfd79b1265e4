/** `ocify build`: flags → BuildOptions → build() → one digest line per destination. */
import { type BuildOptions, type Platform, type PlatformLayer, parseLayerFlag, UsageError } from "../../index.js";
import {
  buildAndReport,
  compressionFlag,
  configEdits,
  configFlags,
  formatFlag,
  gzipEngine,
  helpRequested,
  intFlag,
  keyValues,
  networkHelp,
  parseFlags,
  platformFlag,
  sourceDateEpoch,
  transportFlags,
  transportOptions,
} from "../flags.js";
import { credentialChain, credentialFlags, registriesOf } from "../registry-flags.js";

export const help = `Usage: ocify build --from BASE [--layer SRC[:DEST]]... [CONFIG OPTIONS] -t DEST [-t DEST]...

Build an image: BASE (any image reference, or 'scratch'), each --layer added as one layer, the config
edited, the result written to every -t destination (registry, docker-archive:FILE[:NAME:TAG], oci:DIR[:TAG],
oci-archive:FILE[:TAG]). Prints 'DIGEST DESTINATION' per destination.

Layers:
  --layer SRC[:DEST]        a directory's contents under DEST (default /), a file at DEST, or a
                            .tar/.tar.gz/.tgz/.tar.zst whose entries become the layer (repeatable)
  --chown UID:GID           owner of every added entry (default: 0:0 for a directory or file,
                            a tarball's own owners)
  --compression gzip|zstd|none   layer compression (default gzip)
  --compression-level N     compression level (default: see README)
Config:
  --entrypoint CMD          JSON array '["/app/server"]', or a plain string split on spaces; '' clears
  --cmd CMD                 same forms as --entrypoint (an --entrypoint alone clears the base's CMD)
  --env KEY=VALUE           set a variable, keeping the base's others (repeatable)
  --workdir DIR   --user USER[:GROUP]   --expose PORT[/tcp|udp]   --volume DIR   --label KEY=VALUE
  --annotation KEY=VALUE    manifest annotation (OCI format only)
  --format oci|docker       manifest family (default: the base's; scratch is OCI)
  --platform OS/ARCH[/VARIANT][,…]   the platform(s) to build (default: this host's). One: the image of a
                            multi-platform base to build on. Several: one image each and an index over them
  --layer-for OS/ARCH[/VARIANT]=SRC[:DEST]   a layer for one platform's image only (repeatable), added
                            after the common --layer ones, e.g. --layer-for linux/arm64=./out/arm64:/app
Transport:
  -t, --tag DEST            destination (repeatable)
  --creds USER[:PASS]       credentials for the destination registries (with --password-stdin: the password
                            is read from standard input); default: auth.json, docker's config.json
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry (loopback is always allowed)
  --registry-mirror [REGISTRY=]MIRROR  pull through this mirror first, the registry on a miss (no
                            REGISTRY=: a Docker Hub mirror, as docker's registry-mirrors)
  -j, --jobs N              parallel transfers (default 4)
  --cache-dir DIR           blob and layer cache (default $XDG_CACHE_HOME/ocify or ~/.cache/ocify)
  --fetch-foreign-layers    download a base's non-distributable layers from their URLs for a
                            docker-archive (registries and oci: layouts keep only their URLs)
  --digest-file FILE        write the manifest digest to FILE
  --max-expansion-ratio N   refuse a compressed tarball that expands more than N times once past 1 GiB (default 100)
  --max-expanded-size SIZE  refuse one that expands past SIZE (default 64G)
  -q, --quiet               no progress output
SOURCE_DATE_EPOCH sets 'created', history and file times (default: 0, the epoch).
${networkHelp}`;

/** Run the build command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...transportFlags,
    ...configFlags,
    from: { type: "string" },
    layer: { type: "string", multiple: true },
    chown: { type: "string" },
    compression: { type: "string" },
    "compression-level": { type: "string" },
    annotation: { type: "string", multiple: true },
    format: { type: "string" },
    platform: { type: "string" },
    "layer-for": { type: "string", multiple: true },
    tag: { type: "string", multiple: true, short: "t" },
    "fetch-foreign-layers": { type: "boolean" },
    ...credentialFlags,
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, { hint: "see ocify build --help" });
  if (values.from === undefined) throw new UsageError("--from is required", { hint: "give a base image, or --from scratch" });

  const config = configEdits(values);

  const { options: transport, finish } = transportOptions(values, signal);
  transport.credentials = await credentialChain(values, registriesOf(values.tag ?? []));
  const options: BuildOptions = {
    ...transport,
    from: values.from,
    layers: (values.layer ?? []).map(parseLayerFlag),
    config,
    tags: values.tag ?? [],
  };
  const annotations = keyValues(values.annotation, "--annotation");
  if (annotations) options.annotations = annotations;
  const format = formatFlag(values.format);
  if (format) options.format = format;
  if (values.platform !== undefined) options.platforms = values.platform.split(",").map((p) => platformFlag(p.trim()) as Platform);
  const platformLayers: PlatformLayer[] = (values["layer-for"] ?? []).map((text) => {
    const eq = text.indexOf("=");
    if (eq <= 0) throw new UsageError(`--layer-for ${text}: expected OS/ARCH[/VARIANT]=SRC[:DEST]`);
    return { platform: platformFlag(text.slice(0, eq)) as Platform, layer: parseLayerFlag(text.slice(eq + 1)) };
  });
  if (platformLayers.length) options.platformLayers = platformLayers;
  const compression = compressionFlag(values.compression);
  if (compression) options.compression = compression;
  const level = intFlag(values["compression-level"], "--compression-level", 0, 22);
  if (level !== undefined) options.compressionLevel = level;
  if (values.chown !== undefined) {
    const match = /^(\d+):(\d+)$/.exec(values.chown);
    if (!match) throw new UsageError(`--chown ${values.chown}: expected UID:GID (numbers)`);
    options.chown = { uid: Number(match[1]), gid: Number(match[2]) };
  }
  if (values["fetch-foreign-layers"]) options.fetchForeignLayers = true;
  const engine = gzipEngine();
  if (engine) options.gzipEngine = engine;
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) options.sourceDateEpoch = epoch;

  await buildAndReport(options, finish, values["digest-file"]);
  return 0;
}
