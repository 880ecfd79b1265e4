/** `ocify login [HOST]`: check credentials against the registry, then store them as docker (or podman) does. */
import { login, UsageError } from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";
import { promptLine } from "../prompt.js";
import { readPasswordStdin, warnPasswordInArgv } from "../registry-flags.js";

export const help = `Usage: ocify login [OPTIONS] [HOST]

Log in to a registry (default: Docker Hub). The credentials are checked against the registry first, then
stored as docker login stores them: through the credential helper config.json names (credHelpers for the
host, else credsStore), else base64 in config.json's auths (file mode 0600, other entries kept).

  -u, --username USER       the user name (asked for on a terminal when missing)
  --password-stdin          read the password (or token) from standard input
  -p, --password PASS       the password (visible to other users: prefer --password-stdin)
  --authfile FILE           store in a containers auth.json (podman's format; HOST/NAMESPACE allowed)
  --insecure-registry HOST:PORT  plain HTTP or unverified TLS for this registry`;

/** Run the login command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    username: { type: "string", short: "u" },
    password: { type: "string", short: "p" },
    "password-stdin": { type: "boolean" },
    authfile: { type: "string" },
    "insecure-registry": { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  });
  if (helpRequested(values, help)) return 0;
  if (positionals.length > 1) throw new UsageError("login takes one HOST", { hint: "see ocify login --help" });
  const host = positionals[0] ?? "docker.io";
  if (values.password !== undefined && values["password-stdin"]) throw new UsageError("--password and --password-stdin cannot be combined");
  const username = values.username ?? (await promptLine("Username: ", "--username"));
  if (!username) throw new UsageError("the user name is empty", { hint: "give --username" });
  let password: string;
  if (values["password-stdin"]) password = await readPasswordStdin();
  else if (values.password !== undefined) {
    warnPasswordInArgv("--password");
    password = values.password;
  } else password = await promptLine("Password: ", "--password-stdin", true);
  const result = await login(host, username, password, {
    authFile: values.authfile,
    insecureRegistries: values["insecure-registry"] ?? [],
    signal,
  });
  process.stderr.write(`ocify: credentials stored in ${result.storedIn}\n`);
  process.stdout.write("Login Succeeded\n");
  return 0;
}
