/**
 * Docker's credential helper protocol: `docker-credential-NAME get|store|erase` with the server URL (or a
 * JSON credential for `store`) on stdin and JSON on stdout. A helper that fails becomes one line naming
 * it; its secret is never part of a message.
 */
import { spawn } from "node:child_process";
import { OcifyError } from "../errors.js";
import type { Credential } from "./credential.js";

/** A credential helper that is missing or failed. */
export class CredentialHelperError extends OcifyError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super("CREDENTIAL_HELPER", message, options);
  }
}

/** What `get` prints: the credential for a server. */
interface HelperCredential {
  ServerURL?: string;
  Username?: string;
  Secret?: string;
}

// What helpers print when they have nothing for the server (docker-credential-helpers' ErrCredentialsNotFound).
const notFound = /credentials not found/i;

/** One `docker-credential-NAME` program, named by the config file that refers to it. */
export class CredentialHelper {
  /** The program's name, `docker-credential-NAME`. */
  readonly program: string;

  constructor(
    readonly name: string,
    /** The config file that names the helper, for messages. */
    readonly configPath: string,
  ) {
    this.program = `docker-credential-${name}`;
  }

  /** The credential stored for a server, or undefined when the helper has none. */
  async get(server: string): Promise<Credential | undefined> {
    const result = await this.#run("get", server);
    if (result.code !== 0) {
      if (notFound.test(result.stdout) || notFound.test(result.stderr)) return undefined;
      throw this.#failed("get", result);
    }
    let json: HelperCredential;
    try {
      json = JSON.parse(result.stdout) as HelperCredential;
    } catch {
      throw new CredentialHelperError(`credential helper ${this.program} printed something that is not JSON for ${server}`, {
        hint: `check that ${this.program} works: echo ${server} | ${this.program} get`,
      });
    }
    const secret = typeof json.Secret === "string" ? json.Secret : "";
    const username = typeof json.Username === "string" ? json.Username : "";
    if (!secret && !username) return undefined;
    const source = `${this.program} (${this.configPath})`;
    // A user name of "<token>" marks the secret as an identity (refresh) token, as docker stores them.
    if (username === "<token>") return { identityToken: secret, source };
    return { username, password: secret, source };
  }

  /** Store a credential for a server. */
  async store(server: string, username: string, secret: string): Promise<void> {
    const result = await this.#run("store", JSON.stringify({ ServerURL: server, Username: username, Secret: secret }));
    if (result.code !== 0) throw this.#failed("store", result);
  }

  /** Erase a server's credential; false when the helper had none. */
  async erase(server: string): Promise<boolean> {
    const result = await this.#run("erase", server);
    if (result.code === 0) return true;
    if (notFound.test(result.stdout) || notFound.test(result.stderr)) return false;
    throw this.#failed("erase", result);
  }

  #failed(action: string, result: { stdout: string; stderr: string; code: number }): CredentialHelperError {
    const said = `${result.stdout}\n${result.stderr}`
      .split("\n")
      .map((line) => line.trim())
      .find((line) => line.length > 0);
    const detail = said ? `: ${said.slice(0, 200)}` : ` (exit ${result.code})`;
    return new CredentialHelperError(`credential helper ${this.program} failed to ${action} credentials${detail}`, {
      hint: `fix ${this.program}, or remove it from ${this.configPath}`,
    });
  }

  #run(action: string, input: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.program, [action], { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.stdin.on("error", () => {}); // a helper that exits without reading its input
      child.once("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") {
          reject(
            new CredentialHelperError(`credential helper ${this.program}, named in ${this.configPath}, is not installed`, {
              hint: `install ${this.program} on PATH, or remove it from ${this.configPath}`,
              cause: error,
            }),
          );
        } else {
          reject(new CredentialHelperError(`cannot run credential helper ${this.program}: ${error.message}`, { cause: error }));
        }
      });
      child.once("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
      child.stdin.end(input);
    });
  }
}

const asked = new Map<string, Promise<Credential | undefined>>();

/** `helper get server`, asked once per process. */
export function helperCredential(helper: CredentialHelper, server: string): Promise<Credential | undefined> {
  const key = `${helper.program}\0${helper.configPath}\0${server}`;
  let found = asked.get(key);
  if (!found) {
    found = helper.get(server);
    asked.set(key, found);
    found.catch(() => asked.delete(key));
  }
  return found;
}

/** Forget what helpers answered (after `ocify login` or `logout` changed it). */
export function forgetHelperCredentials(): void {
  asked.clear();
}
