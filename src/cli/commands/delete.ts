/** `ocify delete IMAGE@DIGEST`: delete a manifest where the registry allows it. */
import { deleteImage, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";
import { verbFlags, verbOptions, verbReference } from "../registry-flags.js";

export const help = `Usage: ocify delete [OPTIONS] HOST/REPO@DIGEST

Delete the manifest with that digest (and so every tag that points at it), where the registry allows
deletes. 'ocify digest IMAGE' prints the digest of a tag.

  --creds USER[:PASS]       credentials (--password-stdin: the password from stdin)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry`;

/** Run the delete command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, verbFlags);
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 1) throw new UsageError("delete needs one IMAGE@DIGEST", { hint: "see ocify delete --help" });
  const text = (positionals[0] as string).replace(/^docker:\/\//, "");
  if (!text.includes("@")) {
    throw new UsageError(`delete needs a digest: "${text}" has none`, { hint: `ocify digest ${text} prints it; then delete REPO@DIGEST` });
  }
  const reference = verbReference(text, "delete");
  await deleteImage(reference, await verbOptions(values, reference, signal));
  process.stdout.write(`deleted ${reference.registry}/${reference.repository}@${reference.digest}\n`);
  return 0;
}
