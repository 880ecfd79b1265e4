/** `ocify import ROOTFS -t DEST`: the `docker import` of a root filesystem directory or tarball. */
import { type BuildOptions, UsageError } from "../../index.js";
import {
  buildAndReport,
  compressionFlag,
  configEdits,
  configFlags,
  formatFlag,
  gzipEngine,
  helpRequested,
  networkHelp,
  parseFlags,
  platformFlag,
  sourceDateEpoch,
  transportFlags,
  transportOptions,
} from "../flags.js";
import { credentialChain, credentialFlags, registriesOf } from "../registry-flags.js";

export const help = `Usage: ocify import [OPTIONS] ROOTFS -t DEST [-t DEST]...

Make a one-layer image from a root filesystem: a directory (e.g. an OpenEmbedded IMAGE_ROOTFS), a
tarball (.tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst; detected by content), or "-" for a tarball on
standard input (a FIFO or /dev/stdin works too): tar --numeric-owner --xattrs -C ROOTFS -cf - . | ocify import - -t DEST
Entries are kept exactly: modes, owners, device nodes, links. Entries that would escape the root are refused.

  --from IMAGE              a base image to add the rootfs on top of, as a layer (default: scratch)
  --platform OS/ARCH[/VARIANT]   the image's platform (default: this host's), e.g. linux/arm64
  --entrypoint, --cmd, --env, --workdir, --user, --expose, --volume, --label, --stop-signal, --author
                            as in ocify build
  --format oci|docker       manifest family (default oci)
  --compression gzip|zstd|none
  --cache-repo REGISTRY/REPOSITORY   registry layer cache, as in ocify build (a directory ROOTFS only)
  -t, --tag DEST            destination (repeatable); --insecure-registry, --creds, --password-stdin,
                            --jobs, --digest-file, --quiet as in build
  --max-expansion-ratio N, --max-expanded-size SIZE   decompression bounds, as in build (default 100, 64G)
${networkHelp}`;

/** Run the import command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...transportFlags,
    ...configFlags,
    from: { type: "string" },
    platform: { type: "string" },
    format: { type: "string" },
    compression: { type: "string" },
    tag: { type: "string", multiple: true, short: "t" },
    "cache-repo": { type: "string" },
    ...credentialFlags,
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 1)
    throw new UsageError("import needs one ROOTFS (a directory, a tarball, or - for standard input)", { hint: "see ocify import --help" });
  const config = configEdits(values);
  const { options: transport, finish } = transportOptions(values, signal);
  transport.credentials = await credentialChain(
    values,
    registriesOf([...(values.tag ?? []), ...(values["cache-repo"] ? [values["cache-repo"]] : [])]),
  );
  const options: BuildOptions = {
    ...transport,
    from: values.from ?? "scratch",
    layers: [{ source: positionals[0] as string, dest: "/" }],
    preserveOwners: true,
    config,
    tags: values.tag ?? [],
  };
  if (values["cache-repo"] !== undefined) options.cacheRepo = values["cache-repo"];
  const platform = platformFlag(values.platform);
  if (platform) options.platforms = [platform];
  const format = formatFlag(values.format);
  if (format) options.format = format;
  const compression = compressionFlag(values.compression);
  if (compression) options.compression = compression;
  const engine = gzipEngine();
  if (engine) options.gzipEngine = engine;
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) options.sourceDateEpoch = epoch;
  await buildAndReport(options, finish, values["digest-file"]);
  return 0;
}
