/** `ocify build`: flags → BuildOptions → build() → one digest line per destination. */
import { type BuildOptions, type Platform, type PlatformLayer, parseLayerFlag, splitLayerSource, UsageError } from "../../index.js";
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
import { dockerfileFlags, runDockerfileBuild } from "./build-dockerfile.js";

export const help = `Usage: ocify build --from BASE [--layer SRC[:DEST]]... [CONFIG OPTIONS] -t DEST [-t DEST]...
       ocify build [-f DOCKERFILE] [--build-arg KEY=VALUE]... [--target STAGE] [--platform P[,P…]]
                   [--label KEY=VALUE]... -t DEST [-t DEST]... CONTEXT_DIR

Build an image: BASE (any image reference, or 'scratch'), each --layer added as one layer, the config
edited, the result written to every -t destination (registry, docker-archive:FILE[:NAME:TAG], oci:DIR[:TAG],
oci-archive:FILE[:TAG]). Prints 'DIGEST DESTINATION' per destination.

From a Dockerfile (a CONTEXT_DIR given; no RUN: build the artifacts first and COPY them):
  -f, --file DOCKERFILE     the Dockerfile (default CONTEXT_DIR/Dockerfile)
  --build-arg KEY=VALUE     set an ARG (KEY alone: from the environment; repeatable)
  --target STAGE            build this stage (default: the last)
  --skip-run                drop RUN lines with a warning each instead of refusing the Dockerfile
Layers:
  --layer SRC[:DEST]        a directory's contents under DEST (default /), a file at DEST, or a
                            .tar/.tar.gz/.tgz/.tar.zst whose entries become the layer (repeatable)
  --split-layer SRC[:DEST]  a directory as several layers, one per entry --split-depth levels down
                            (default 2; files and empty directories above are layers too), added after
                            the --layer ones: a one-file change then uploads one small layer (repeatable)
  --chown UID:GID           owner of every added entry (default: 0:0 for a directory or file,
                            a tarball's own owners)
  --compression gzip|zstd|none   layer compression (default gzip)
  --compression-level N     compression level (default: see README)
Config:
  --entrypoint CMD          JSON array '["/app/server"]', or a plain string split on spaces; '' clears
  --cmd CMD                 same forms as --entrypoint (an --entrypoint alone clears the base's CMD)
  --env KEY=VALUE           set a variable, keeping the base's others (repeatable)
  --workdir DIR   --user USER[:GROUP]   --expose PORT[/tcp|udp]   --volume DIR   --label KEY=VALUE
  --stop-signal SIGNAL      --author TEXT  (the config's StopSignal and author)
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
  --cache-repo REGISTRY/REPOSITORY   registry layer cache: a directory layer this machine never built
                            is looked up there by its contents and mounted when found (not compressed
                            nor uploaded); the layers it lacks are stored after the push (same
                            credentials as the destinations)
  --max-expansion-ratio N   refuse a compressed tarball that expands more than N times once past 1 GiB (default 100)
  --max-expanded-size SIZE  refuse one that expands past SIZE (default 64G)
  -q, --quiet               no progress output
SOURCE_DATE_EPOCH sets 'created', history and file times (default: 0, the epoch).
${networkHelp}`;

/** The layers of every --split-layer, each directory split --split-depth levels down. */
function splitLayers(flags: string[] | undefined, depthFlag: string | undefined): BuildOptions["layers"] {
  const depth = intFlag(depthFlag, "--split-depth", 1, 16) ?? 2;
  return (flags ?? []).flatMap((text) => splitLayerSource(parseLayerFlag(text), depth));
}

/** Run the build command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...transportFlags,
    ...configFlags,
    from: { type: "string" },
    layer: { type: "string", multiple: true },
    "split-layer": { type: "string", multiple: true },
    "split-depth": { type: "string" },
    chown: { type: "string" },
    compression: { type: "string" },
    "compression-level": { type: "string" },
    annotation: { type: "string", multiple: true },
    format: { type: "string" },
    platform: { type: "string" },
    "layer-for": { type: "string", multiple: true },
    tag: { type: "string", multiple: true, short: "t" },
    "cache-repo": { type: "string" },
    "fetch-foreign-layers": { type: "boolean" },
    ...credentialFlags,
    ...dockerfileFlags,
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length === 1) return runDockerfileBuild(values, positionals[0] as string, signal);
  const dockerfileOnly = Object.keys(dockerfileFlags).find((flag) => values[flag as keyof typeof values] !== undefined);
  if (dockerfileOnly) throw new UsageError(`--${dockerfileOnly} needs a build context`, { hint: "give the context directory last" });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, { hint: "see ocify build --help" });
  if (values.from === undefined)
    throw new UsageError("--from is required", { hint: "give a base image, or --from scratch, or a context directory with a Dockerfile" });

  const config = configEdits(values);

  const { options: transport, finish } = transportOptions(values, signal);
  transport.credentials = await credentialChain(
    values,
    registriesOf([...(values.tag ?? []), ...(values["cache-repo"] ? [values["cache-repo"]] : [])]),
  );
  const options: BuildOptions = {
    ...transport,
    from: values.from,
    layers: [...(values.layer ?? []).map(parseLayerFlag), ...splitLayers(values["split-layer"], values["split-depth"])],
    config,
    tags: values.tag ?? [],
  };
  if (values["cache-repo"] !== undefined) options.cacheRepo = values["cache-repo"];
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
