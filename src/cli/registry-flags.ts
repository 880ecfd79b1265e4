/** Flags of the commands that talk to registries: explicit credentials (`--creds`, `--password-stdin`). */

import type { ParseArgsConfig } from "node:util";
import {
  type Credential,
  type CredentialProvider,
  defaultCredentials,
  ExplicitCredentialProvider,
  parseCredentialFlag,
  parseTransportReference,
  type Reference,
  type RegistryVerbOptions,
  UsageError,
} from "../index.js";

/** `--creds USER[:PASSWORD]` and `--password-stdin`. */
export const credentialFlags = {
  creds: { type: "string" },
  "password-stdin": { type: "boolean" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

/** Read a password from standard input: everything up to the end, less one trailing newline (as docker login does). */
export async function readPasswordStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  const text = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (!text) throw new UsageError("--password-stdin: standard input is empty", { hint: "pipe the password in: echo $PASSWORD | ocify …" });
  return text;
}

/** Warn that a password given on the command line can be seen by other users (ps, shell history). */
export function warnPasswordInArgv(flag: string): void {
  process.stderr.write(`ocify: warning: a password in ${flag} is visible to other users of this machine (use --password-stdin)\n`);
}

/** A `--creds`-style flag as a credential: the password from the flag (with a warning) or from `stdinPassword`. */
export function flagCredential(value: string, flag: string, stdinPassword: string | undefined): Credential {
  const parsed = parseCredentialFlag(value, flag);
  if (parsed.password !== undefined) {
    if (stdinPassword !== undefined) throw new UsageError(`${flag} has a password and --password-stdin was given too`, { hint: "use one" });
    warnPasswordInArgv(flag);
    return { username: parsed.username, password: parsed.password, source: flag };
  }
  if (stdinPassword === undefined) {
    throw new UsageError(`${flag} ${parsed.username}: no password`, { hint: `add --password-stdin and pipe the password in` });
  }
  return { username: parsed.username, password: stdinPassword, source: `${flag} and --password-stdin` };
}

/** The registry hosts of the docker:// references among `references` (others have no registry). */
export function registriesOf(references: readonly string[]): string[] {
  const hosts: string[] = [];
  for (const text of references) {
    if (text === "scratch") continue;
    const parsed = parseTransportReference(text);
    if (parsed.transport === "docker") hosts.push(parsed.reference.registry);
  }
  return hosts;
}

/**
 * The credential chain for a command whose `--creds` applies to `registries`: the explicit credential for
 * those hosts only (never sent to another registry, such as a base image's), then the default chain.
 */
export async function credentialChain(
  values: { creds?: string | undefined; "password-stdin"?: boolean | undefined },
  registries: readonly string[],
): Promise<CredentialProvider[] | undefined> {
  if (values.creds === undefined) {
    if (values["password-stdin"]) throw new UsageError("--password-stdin needs --creds USER", { hint: "give the user name with --creds" });
    return undefined;
  }
  if (registries.length === 0) throw new UsageError("--creds: no registry to use them for", { hint: "name a registry image" });
  const password = values["password-stdin"] ? await readPasswordStdin() : undefined;
  return [new ExplicitCredentialProvider(flagCredential(values.creds, "--creds", password), registries), defaultCredentials()];
}

/** The credential chains of `copy`: `--src-creds` for the source's registry, `--dest-creds` for the destination's. */
export async function copyCredentials(
  values: { "src-creds"?: string | undefined; "dest-creds"?: string | undefined; "password-stdin"?: boolean | undefined },
  sourceRegistries: readonly string[],
  destinationRegistries: readonly string[],
): Promise<{ source?: CredentialProvider[] | undefined; destination?: CredentialProvider[] | undefined }> {
  const sides = [
    { flag: "--src-creds", value: values["src-creds"], registries: sourceRegistries },
    { flag: "--dest-creds", value: values["dest-creds"], registries: destinationRegistries },
  ];
  const needStdin = sides.filter((side) => side.value !== undefined && !side.value.includes(":"));
  if (values["password-stdin"] && needStdin.length !== 1) {
    throw new UsageError("--password-stdin needs exactly one of --src-creds USER and --dest-creds USER without a password", {
      hint: "give the other password in its flag, or use a credential helper",
    });
  }
  const password = values["password-stdin"] ? await readPasswordStdin() : undefined;
  const chain = (side: (typeof sides)[number]): CredentialProvider[] | undefined => {
    if (side.value === undefined) return undefined;
    if (side.registries.length === 0) throw new UsageError(`${side.flag}: that side is not a registry`);
    const credential = flagCredential(side.value, side.flag, side === needStdin[0] ? password : undefined);
    return [new ExplicitCredentialProvider(credential, side.registries), defaultCredentials()];
  };
  return { source: chain(sides[0] as (typeof sides)[number]), destination: chain(sides[1] as (typeof sides)[number]) };
}

/** The flags of the registry verbs (ls, digest, tag, delete). */
export const verbFlags = {
  ...credentialFlags,
  "insecure-registry": { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

/** A registry reference given to a verb: docker:// optional, no other transport. */
export function verbReference(text: string, verb: string): Reference {
  const parsed = parseTransportReference(text);
  if (parsed.transport !== "docker")
    throw new UsageError(`${verb} works on registry images, not ${parsed.transport}:`, { hint: `see ocify ${verb} --help` });
  return parsed.reference;
}

/** The options of a verb: insecure registries, and the credential chain for the reference's registry. */
export async function verbOptions(
  values: { creds?: string | undefined; "password-stdin"?: boolean | undefined; "insecure-registry"?: string[] | undefined },
  reference: Reference,
  signal: AbortSignal,
): Promise<RegistryVerbOptions> {
  return {
    insecureRegistries: values["insecure-registry"] ?? [],
    credentials: await credentialChain(values, [reference.registry]),
    signal,
  };
}
