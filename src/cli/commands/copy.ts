/** `ocify copy SRC DST`: any transport to any transport. */
import {
  type CopyImageOptions,
  checkDestination,
  copyImage,
  openDestination,
  openSource,
  parseTransportReference,
  UsageError,
} from "../../index.js";
import { helpRequested, networkHelp, parseFlags, platformFlag, transportFlags, transportOptions, writeDigestFile } from "../flags.js";
import { copyCredentials, registriesOf } from "../registry-flags.js";

export const help = `Usage: ocify copy [OPTIONS] SOURCE DESTINATION

Copy an image between registries (docker://REF or REF), docker-archive:FILE[:NAME:TAG|:@N],
oci:DIR[:TAG] and oci-archive:FILE[:TAG]. Manifest and config bytes are kept, so digests are kept
wherever the format allows; blobs already at the destination are not sent again.

  --all                     copy every platform of a multi-platform image, and its index
  --platform OS/ARCH[/VARIANT]   the platform to copy from a multi-platform image (default: this host's)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry
  --fetch-foreign-layers    download non-distributable layers from their URLs for a docker-archive
                            (registries and oci: layouts keep only their URLs)
  --registry-mirror [REGISTRY=]MIRROR  pull through this mirror first, the registry on a miss (no
                            REGISTRY=: a Docker Hub mirror, as docker's registry-mirrors)
  --src-creds USER[:PASS]   credentials for the source registry
  --dest-creds USER[:PASS]  credentials for the destination registry
  --password-stdin          read the password of the one --src-creds/--dest-creds without one from stdin
  -j, --jobs N              parallel transfers (default 4)
  --digest-file FILE        write the copied manifest digest to FILE
  -q, --quiet               no progress output
  --max-expansion-ratio N, --max-expanded-size SIZE   bounds for a compressed archive source (default 100, 64G)
${networkHelp}`;

/** Run the copy command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...transportFlags,
    all: { type: "boolean", short: "a" },
    platform: { type: "string" },
    "fetch-foreign-layers": { type: "boolean" },
    "src-creds": { type: "string" },
    "dest-creds": { type: "string" },
    "password-stdin": { type: "boolean" },
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 2) throw new UsageError("copy needs a SOURCE and a DESTINATION", { hint: "see ocify copy --help" });
  const [from, to] = positionals.map((p) => parseTransportReference(p)) as [
    ReturnType<typeof parseTransportReference>,
    ReturnType<typeof parseTransportReference>,
  ];
  checkDestination(to);
  const { options: transport, finish } = transportOptions(values, signal);
  const chains = await copyCredentials(values, registriesOf([positionals[0] as string]), registriesOf([positionals[1] as string]));
  const options: CopyImageOptions = { ...transport };
  const platform = platformFlag(values.platform);
  if (platform) options.platform = platform;
  if (values.all) options.all = true;
  if (values["fetch-foreign-layers"]) options.fetchForeignLayers = true;
  if (values.all && platform) throw new UsageError("--all and --platform cannot be combined");
  const source = await openSource(from, { ...transport, credentials: chains.source });
  try {
    const destination = await openDestination(to, { ...transport, credentials: chains.destination });
    const result = await copyImage(source, destination, options);
    finish();
    process.stdout.write(`${result.digest} ${result.destination}\n`);
    await writeDigestFile(values["digest-file"], result.digest);
  } finally {
    await source.close();
  }
  return 0;
}
