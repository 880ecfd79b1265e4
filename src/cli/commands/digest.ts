/** `ocify digest REF`: the manifest digest, exactly as the registry has it. */
import { resolveDigest, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";
import { verbFlags, verbOptions, verbReference } from "../registry-flags.js";

export const help = `Usage: ocify digest [OPTIONS] IMAGE

Print the digest of the manifest IMAGE names (an index for a multi-platform image), as the registry
has it. It asks with HEAD, which Docker Hub does not count as a pull.

  --creds USER[:PASS]       credentials (--password-stdin: the password from stdin)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry`;

/** Run the digest command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, verbFlags);
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 1) throw new UsageError("digest needs one IMAGE", { hint: "see ocify digest --help" });
  const reference = verbReference(positionals[0] as string, "digest");
  process.stdout.write(`${await resolveDigest(reference, await verbOptions(values, reference, signal))}\n`);
  return 0;
}
