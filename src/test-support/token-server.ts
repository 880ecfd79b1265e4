/**
 * A token service as distribution's token auth expects, for tests: RS256 JWTs whose x5c is the
 * self-signed certificate in the registry's rootcertbundle. It answers GET (Basic credentials or anonymous)
 * and OAuth2 POST (refresh_token and password grants) unless `getOnly`, records every request, and grants
 * what `access` allows.
 */
import { createSign, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { makeSelfSigned } from "./tls.js";

/** One token request as the service saw it. */
export interface TokenRequest {
  method: string;
  /** The authenticated account, undefined for anonymous, `rejected:USER` for wrong credentials. */
  account: string | undefined;
  scopes: string[];
  service: string | null;
  /** The OAuth2 grant type of a POST. */
  grant?: string;
}

/** Options of a test token service. */
export interface TokenServerOptions {
  /** user → password. */
  users: Record<string, string>;
  /** OAuth2 refresh token → user. */
  refreshTokens?: Record<string, string>;
  /** Answer POST with 404, as token services that know only GET do. */
  getOnly?: boolean;
  /** The actions an account (undefined: anonymous) gets on a repository; default: all asked for, none anonymous. */
  access?(account: string | undefined, repository: string, actions: string[]): string[];
  /** Sign the first token of these accounts with a key the registry does not trust (it answers 401). */
  untrustedFirstToken?: string[];
  /** expires_in of the tokens, seconds (default 300). */
  expiresIn?: number;
}

/** A running token service. */
export interface TokenServer {
  realm: string;
  /** The signer's certificate: the registry's rootcertbundle. */
  certPath: string;
  requests: TokenRequest[];
  stop(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    req.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    req.on("end", () => resolve(text));
  });
}

/** Start a token service on a free loopback port (another port than the registry's: another host). */
export async function startTokenServer(dir: string, options: TokenServerOptions): Promise<TokenServer> {
  const signer = makeSelfSigned(dir, "signer", "ocify-test-token-signer");
  const rogue = makeSelfSigned(dir, "rogue", "ocify-test-rogue-signer");
  const keys = { trusted: readFileSync(signer.key, "utf8"), rogue: readFileSync(rogue.key, "utf8") };
  const certs = { trusted: new X509Certificate(readFileSync(signer.cert)), rogue: new X509Certificate(readFileSync(rogue.cert)) };
  const untrusted = new Set(options.untrustedFirstToken ?? []);
  const requests: TokenRequest[] = [];
  const sign = (account: string | undefined, scopes: string[]): string => {
    const access = scopes.map((scope) => {
      const [type, ...middle] = scope.split(":");
      const asked = (middle.pop() ?? "").split(",");
      const name = middle.join(":");
      const granted = options.access ? options.access(account, name, asked) : account ? asked : [];
      return { type, name, actions: granted };
    });
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: "ocify-test-issuer", sub: account ?? "", aud: "ocify-test-registry", exp: now + 300, nbf: now - 10, iat: now };
    const which = account && untrusted.delete(account) ? "rogue" : "trusted";
    const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const header = { alg: "RS256", typ: "JWT", x5c: [certs[which].raw.toString("base64")] };
    const input = `${b64url(header)}.${b64url({ ...claims, jti: String(Math.random()), access })}`;
    return `${input}.${createSign("RSA-SHA256").update(input).sign(keys[which]).toString("base64url")}`;
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const fail = (status: number) => res.writeHead(status, { "content-type": "application/json" }).end('{"details":"refused"}');
    let account: string | undefined;
    let scopes = url.searchParams.getAll("scope");
    let service = url.searchParams.get("service");
    const record: TokenRequest = { method: req.method ?? "GET", account: undefined, scopes, service };
    if (req.method === "POST") {
      const form = new URLSearchParams(await readBody(req));
      record.grant = form.get("grant_type") ?? "";
      scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
      service = form.get("service");
      Object.assign(record, { scopes, service });
      requests.push(record);
      if (options.getOnly) return fail(404);
      const user =
        record.grant === "refresh_token"
          ? options.refreshTokens?.[form.get("refresh_token") ?? ""]
          : options.users[form.get("username") ?? ""] === form.get("password")
            ? (form.get("username") ?? undefined)
            : undefined;
      if (!user) {
        record.account = "rejected:oauth";
        return fail(401);
      }
      account = user;
    } else {
      requests.push(record);
      const header = req.headers.authorization;
      if (header?.startsWith("Basic ")) {
        const [user, ...rest] = Buffer.from(header.slice(6), "base64").toString().split(":");
        const secret = rest.join(":");
        const viaRefresh = user === "<token>" ? options.refreshTokens?.[secret] : undefined;
        if (!viaRefresh && (!user || options.users[user] !== secret)) {
          record.account = `rejected:${user}`;
          return fail(401);
        }
        account = viaRefresh ?? user;
      }
    }
    record.account = account;
    const body = { token: sign(account, scopes), expires_in: options.expiresIn ?? 300 };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath: signer.cert,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
