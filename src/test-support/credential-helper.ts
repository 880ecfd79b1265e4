/**
 * A docker credential helper for tests: `docker-credential-NAME` (a Node script) in a directory to put on
 * PATH, keeping its secrets in a JSON file and logging every call (action and server, never the secret).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A test helper's files. */
export interface TestCredentialHelper {
  /** The directory holding `docker-credential-NAME`: prepend it to PATH. */
  dir: string;
  /** Its name (what credsStore / credHelpers say). */
  name: string;
  /** The calls so far: `get SERVER`, `store SERVER USER`, `erase SERVER`. */
  calls(): string[];
  /** What it stores, by server. */
  stored(): Record<string, { Username: string; Secret: string }>;
  /** Replace what it stores. */
  setStored(entries: Record<string, { Username: string; Secret: string }>): void;
}

/** Write `docker-credential-NAME` into `dir`; `failWith` makes every call fail with that message. */
export function writeCredentialHelper(dir: string, name: string, options: { failWith?: string } = {}): TestCredentialHelper {
  const storePath = join(dir, `${name}-store.json`);
  const logPath = join(dir, `${name}-calls.log`);
  writeFileSync(storePath, "{}");
  writeFileSync(logPath, "");
  const script = `#!${process.execPath}
const fs = require("node:fs");
const action = process.argv[2];
const input = fs.readFileSync(0, "utf8");
const store = JSON.parse(fs.readFileSync(${JSON.stringify(storePath)}, "utf8"));
const log = (line) => fs.appendFileSync(${JSON.stringify(logPath)}, line + "\\n");
${options.failWith ? `log(action + " failing"); process.stdout.write(${JSON.stringify(options.failWith)} + "\\n"); process.exit(1);` : ""}
if (action === "get") {
  const server = input.trim();
  log("get " + server);
  const entry = store[server];
  if (!entry) { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); }
  process.stdout.write(JSON.stringify({ ServerURL: server, Username: entry.Username, Secret: entry.Secret }));
} else if (action === "store") {
  const entry = JSON.parse(input);
  log("store " + entry.ServerURL + " " + entry.Username);
  store[entry.ServerURL] = { Username: entry.Username, Secret: entry.Secret };
  fs.writeFileSync(${JSON.stringify(storePath)}, JSON.stringify(store));
} else if (action === "erase") {
  const server = input.trim();
  log("erase " + server);
  if (!store[server]) { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); }
  delete store[server];
  fs.writeFileSync(${JSON.stringify(storePath)}, JSON.stringify(store));
} else {
  process.stdout.write("unknown action\\n");
  process.exit(1);
}
`;
  writeFileSync(join(dir, `docker-credential-${name}`), script, { mode: 0o755 });
  return {
    dir,
    name,
    calls: () => readFileSync(logPath, "utf8").split("\n").filter(Boolean),
    stored: () => JSON.parse(readFileSync(storePath, "utf8")),
    setStored: (entries) => writeFileSync(storePath, JSON.stringify(entries)),
  };
}
