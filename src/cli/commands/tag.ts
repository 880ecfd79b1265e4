/** `ocify tag IMAGE NEWTAG`: the same manifest under another tag of the same repository; no blob moves. */
import { tagImage, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";
import { verbFlags, verbOptions, verbReference } from "../registry-flags.js";

export const help = `Usage: ocify tag [OPTIONS] IMAGE NEWTAG

Put the manifest IMAGE names under NEWTAG in the same repository (no blob is moved). Prints
'DIGEST HOST/REPO:NEWTAG'.

  --creds USER[:PASS]       credentials (--password-stdin: the password from stdin)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry`;

/** Run the tag command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, verbFlags);
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 2) throw new UsageError("tag needs an IMAGE and a NEWTAG", { hint: "see ocify tag --help" });
  const reference = verbReference(positionals[0] as string, "tag");
  const tag = positionals[1] as string;
  const digest = await tagImage(reference, tag, await verbOptions(values, reference, signal));
  process.stdout.write(`${digest} ${reference.registry}/${reference.repository}:${tag}\n`);
  return 0;
}
