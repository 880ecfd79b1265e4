/** `ocify logout [HOST]`: remove a registry's stored credentials. */
import { logout, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";

export const help = `Usage: ocify logout [OPTIONS] [HOST]

Remove the credentials stored for a registry (default: Docker Hub): through the credential helper
config.json names, and from config.json's auths.

  --authfile FILE           remove them from a containers auth.json instead`;

/** Run the logout command. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { authfile: { type: "string" }, help: { type: "boolean", short: "h" } });
  if (helpRequested(values, help)) return 0;
  if (positionals.length > 1) throw new UsageError("logout takes one HOST", { hint: "see ocify logout --help" });
  const host = positionals[0] ?? "docker.io";
  const removed = await logout(host, { authFile: values.authfile });
  process.stdout.write(removed ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
  return 0;
}
