/** `ocify ls REPOSITORY`: every tag, one per line (or a JSON array). */
import { listTags, parseReference, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";
import { verbFlags, verbOptions } from "../registry-flags.js";

export const help = `Usage: ocify ls [OPTIONS] REPOSITORY

List every tag of a repository (HOST/REPO), one per line, following the registry's pages.

  --json                    print a JSON array
  --creds USER[:PASS]       credentials (--password-stdin: the password from stdin)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry`;

/** Run the ls command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...verbFlags, json: { type: "boolean" } });
  if (helpRequested(values, help)) return 0;
  if (positionals.length !== 1) throw new UsageError("ls needs one REPOSITORY", { hint: "see ocify ls --help" });
  const text = (positionals[0] as string).replace(/^docker:\/\//, "");
  const reference = parseReference(text);
  if (reference.tag !== undefined || reference.digest !== undefined) {
    throw new UsageError(`ls lists a repository: drop the tag or digest from "${text}"`);
  }
  const tags = await listTags(reference, await verbOptions(values, reference, signal));
  process.stdout.write(values.json ? `${JSON.stringify(tags)}\n` : tags.map((tag) => `${tag}\n`).join(""));
  return 0;
}
