/**
 * What each Dockerfile instruction says, checked and typed, still unexpanded: `$VAR`s are expanded when
 * the stage is evaluated, with the ARGs and ENVs in effect at that instruction.
 */
import { type BuildFlag, DockerfileError, type Heredoc, type ParsedDockerfile, type RawInstruction, splitFlags } from "./parser.js";

/** `["a","b"]` (exec form) or a command line for the shell (shell form). */
export type CommandForm = { exec: string[] } | { shell: string };

/** Options of HEALTHCHECK, as durations and a count still to be parsed. */
export interface HealthcheckOptions {
  interval?: string;
  timeout?: string;
  startPeriod?: string;
  startInterval?: string;
  retries?: string;
}

interface Common {
  /** The instruction as written, for messages and history. */
  source: RawInstruction;
}

/** The fields of each kind of instruction. */
interface Shapes {
  FROM: { image: string; stageName: string | undefined; platform: string | undefined };
  ARG: { args: { name: string; value: string | undefined }[] };
  ENV: { pairs: [string, string][] };
  LABEL: { pairs: [string, string][] };
  COPY: CopyShape;
  ADD: CopyShape;
  WORKDIR: { value: string };
  USER: { value: string };
  STOPSIGNAL: { value: string };
  MAINTAINER: { value: string };
  EXPOSE: { values: string[] };
  VOLUME: { values: string[] };
  ENTRYPOINT: { command: CommandForm };
  CMD: { command: CommandForm };
  SHELL: { command: CommandForm };
  RUN: { command: CommandForm };
  HEALTHCHECK: { command: CommandForm | null; options: HealthcheckOptions };
  ONBUILD: { trigger: string };
}

interface CopyShape {
  sources: string[];
  dest: string;
  from: string | undefined;
  chown: string | undefined;
  chmod: string | undefined;
  link: boolean;
  heredocs: Heredoc[];
}

/** A typed instruction. Words are raw (quotes and `$VAR`s still in them) where docker expands them. */
export type Instruction = { [K in keyof Shapes]: Common & { kind: K } & Shapes[K] }[keyof Shapes];

/** The instructions of some kinds: `InstructionOf<"COPY" | "ADD">`. */
export type InstructionOf<K extends keyof Shapes> = Extract<Instruction, { kind: K }>;

/** Instruction names docker knows; each either has a meaning here or is refused by name. */
const handlers: Record<string, (raw: RawInstruction, file: string) => Instruction> = {
  FROM: parseFrom,
  ARG: (raw, file) => ({ kind: "ARG", source: raw, args: parseArgs(raw, file) }),
  ENV: (raw, file) => ({ kind: "ENV", source: raw, pairs: parseNameValues(raw, file) }),
  LABEL: (raw, file) => ({ kind: "LABEL", source: raw, pairs: parseNameValues(raw, file) }),
  COPY: (raw, file) => parseCopy(raw, file, "COPY"),
  ADD: (raw, file) => parseCopy(raw, file, "ADD"),
  WORKDIR: (raw, file) => single(raw, file, "WORKDIR"),
  USER: (raw, file) => single(raw, file, "USER"),
  STOPSIGNAL: (raw, file) => single(raw, file, "STOPSIGNAL"),
  MAINTAINER: (raw, file) => single(raw, file, "MAINTAINER"),
  EXPOSE: (raw, file) => list(raw, file, "EXPOSE", false),
  VOLUME: (raw, file) => list(raw, file, "VOLUME", true),
  ENTRYPOINT: (raw, file) => command(raw, file, "ENTRYPOINT"),
  CMD: (raw, file) => command(raw, file, "CMD"),
  SHELL: parseShell,
  RUN: (raw, file) => command(raw, file, "RUN", ["mount", "network", "security"]),
  HEALTHCHECK: parseHealthcheck,
  ONBUILD: parseOnbuild,
};

/** Type every instruction of a parsed Dockerfile; an unknown instruction or option names its line. */
export function typeInstructions(parsed: ParsedDockerfile): Instruction[] {
  return parsed.instructions.map((raw) => typeInstruction(raw, parsed.file));
}

/** Type one raw instruction. */
export function typeInstruction(raw: RawInstruction, file: string): Instruction {
  const handler = handlers[raw.keyword];
  if (!handler) throw new DockerfileError(file, raw.line, `unknown instruction ${raw.keyword}`);
  return handler(raw, file);
}

function fail(raw: RawInstruction, file: string, message: string, hint?: string): never {
  throw new DockerfileError(file, raw.line, `${raw.keyword}: ${message}`, hint);
}

/** The instruction's options by name, refusing any not in `allowed` and any given twice. */
function flagsOf(raw: RawInstruction, file: string, allowed: readonly string[]): Map<string, string | undefined> {
  const flags = new Map<string, string | undefined>();
  for (const flag of raw.flags) {
    if (!allowed.includes(flag.name)) {
      fail(
        raw,
        file,
        `unknown option --${flag.name}`,
        allowed.length ? `it takes ${allowed.map((a) => `--${a}`).join(", ")}` : "it takes no options",
      );
    }
    if (flags.has(flag.name)) fail(raw, file, `--${flag.name} is given twice`);
    flags.set(flag.name, flag.value);
  }
  return flags;
}

function valueFlag(raw: RawInstruction, file: string, flags: Map<string, string | undefined>, name: string): string | undefined {
  if (!flags.has(name)) return undefined;
  const value = flags.get(name);
  if (value === undefined || value === "") fail(raw, file, `--${name} needs a value (--${name}=…)`);
  return value;
}

function boolFlag(raw: RawInstruction, file: string, flags: Map<string, string | undefined>, name: string): boolean {
  if (!flags.has(name)) return false;
  const value = flags.get(name);
  if (value === undefined || value === "true") return true;
  if (value === "false") return false;
  return fail(raw, file, `--${name} takes true or false, not "${value}"`);
}

function requireArgs(raw: RawInstruction, file: string): void {
  if (raw.rest === "") fail(raw, file, "needs an argument");
}

function parseFrom(raw: RawInstruction, file: string): Instruction {
  const flags = flagsOf(raw, file, ["platform"]);
  const words = raw.rest.split(/\s+/).filter((w) => w !== "");
  if (words.length !== 1 && !(words.length === 3 && words[1]?.toUpperCase() === "AS")) {
    fail(raw, file, `expected "FROM image [AS name]", got "${raw.rest}"`);
  }
  const stageName = words[2]?.toLowerCase();
  if (stageName !== undefined && !/^[a-z][a-z0-9._-]*$/.test(stageName)) {
    fail(raw, file, `"${words[2]}" is not a valid stage name`, "start with a letter; use letters, digits, '.', '_' and '-'");
  }
  return { kind: "FROM", source: raw, image: words[0] as string, stageName, platform: valueFlag(raw, file, flags, "platform") };
}

/**
 * Split on whitespace outside quotes, keeping quotes and escapes in the words (they are removed when the
 * word is expanded): the words of ENV, LABEL and ARG.
 */
export function splitWords(text: string, escapeChar: string): string[] {
  const words: string[] = [];
  let word = "";
  let started = false;
  let quote: string | undefined;
  for (let pos = 0; pos < text.length; pos++) {
    const ch = text[pos] as string;
    if (quote === undefined && /\s/.test(ch)) {
      if (started) words.push(word);
      word = "";
      started = false;
      continue;
    }
    started = true;
    if (ch === escapeChar && quote !== "'") {
      if (pos + 1 === text.length) continue; // a trailing escapeChar is dropped
      word += ch + (text[++pos] as string);
      continue;
    }
    if (quote === undefined && (ch === "'" || ch === '"')) quote = ch;
    else if (ch === quote) quote = undefined;
    word += ch;
  }
  if (started) words.push(word);
  return words;
}

/** `KEY=VALUE …` pairs, or the old `KEY VALUE` form (the rest of the line is the value). */
function parseNameValues(raw: RawInstruction, file: string): [string, string][] {
  flagsOf(raw, file, []);
  requireArgs(raw, file);
  const words = splitWords(raw.rest, raw.escapeChar);
  if (!words[0]?.includes("=")) {
    const match = /^(\S+)\s+([\s\S]+)$/.exec(raw.rest);
    if (!match) fail(raw, file, `needs a value: write ${raw.keyword} KEY=VALUE`);
    return [[match[1] as string, match[2] as string]];
  }
  return words.map((word) => {
    const eq = word.indexOf("=");
    if (eq < 0) fail(raw, file, `"${word}" is not KEY=VALUE`);
    if (eq === 0) fail(raw, file, `"${word}" has no name before =`);
    return [word.slice(0, eq), word.slice(eq + 1)];
  });
}

function parseArgs(raw: RawInstruction, file: string): { name: string; value: string | undefined }[] {
  flagsOf(raw, file, []);
  requireArgs(raw, file);
  return splitWords(raw.rest, raw.escapeChar).map((word) => {
    const eq = word.indexOf("=");
    const name = eq < 0 ? word : word.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(raw, file, `"${name}" is not a valid argument name`);
    return { name, value: eq < 0 ? undefined : word.slice(eq + 1) };
  });
}

/** A JSON array of strings, or undefined when `text` is not one (then it is shell form). */
function jsonArray(text: string): string[] | undefined {
  if (!text.startsWith("[")) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (Array.isArray(parsed) && parsed.every((item) => typeof item === "string")) return parsed;
  } catch {
    // not JSON: shell form
  }
  return undefined;
}

function parseCopy(raw: RawInstruction, file: string, kind: "COPY" | "ADD"): Instruction {
  const allowed =
    kind === "COPY"
      ? ["from", "chown", "chmod", "link", "parents", "exclude"]
      : ["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"];
  const flags = flagsOf(raw, file, allowed);
  for (const unsupported of ["parents", "exclude", "checksum", "keep-git-dir"]) {
    if (flags.has(unsupported)) fail(raw, file, `--${unsupported} is not supported yet`, "copy the files without it");
  }
  requireArgs(raw, file);
  // As docker does, the shell form splits on whitespace only: a path with spaces needs the JSON form.
  const words = jsonArray(raw.rest) ?? raw.rest.split(/[\t\v\f\r ]+/).filter((w) => w !== "");
  if (words.length < 2) fail(raw, file, `needs at least one source and a destination, got "${raw.rest}"`);
  return <Instruction>{
    kind,
    source: raw,
    sources: words.slice(0, -1),
    dest: words[words.length - 1] as string,
    from: valueFlag(raw, file, flags, "from"),
    chown: valueFlag(raw, file, flags, "chown"),
    chmod: valueFlag(raw, file, flags, "chmod"),
    link: boolFlag(raw, file, flags, "link"),
    heredocs: raw.heredocs,
  };
}

function single(raw: RawInstruction, file: string, kind: "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER"): Instruction {
  flagsOf(raw, file, []);
  requireArgs(raw, file);
  return <Instruction>{ kind, source: raw, value: raw.rest };
}

function list(raw: RawInstruction, file: string, kind: "EXPOSE" | "VOLUME", json: boolean): Instruction {
  flagsOf(raw, file, []);
  requireArgs(raw, file);
  const values = (json ? jsonArray(raw.rest) : undefined) ?? raw.rest.split(/[\t\v\f\r ]+/).filter((v) => v !== "");
  return <Instruction>{ kind, source: raw, values };
}

function commandForm(rest: string): CommandForm {
  return jsonArray(rest) ? { exec: jsonArray(rest) as string[] } : { shell: rest };
}

function command(raw: RawInstruction, file: string, kind: "ENTRYPOINT" | "CMD" | "RUN", allowed: readonly string[] = []): Instruction {
  flagsOf(raw, file, allowed);
  if (kind === "RUN") requireArgs(raw, file);
  return <Instruction>{ kind, source: raw, command: commandForm(raw.rest) };
}

function parseShell(raw: RawInstruction, file: string): Instruction {
  flagsOf(raw, file, []);
  const exec = jsonArray(raw.rest);
  if (!exec || exec.length === 0) fail(raw, file, 'takes a JSON array, e.g. SHELL ["/bin/bash", "-c"]');
  return { kind: "SHELL", source: raw, command: { exec } };
}

function parseHealthcheck(raw: RawInstruction, file: string): Instruction {
  const flags = flagsOf(raw, file, ["interval", "timeout", "start-period", "start-interval", "retries"]);
  const match = /^(\S+)\s*([\s\S]*)$/.exec(raw.rest);
  const type = match?.[1]?.toUpperCase();
  if (type === "NONE") {
    if (match?.[2] || raw.flags.length) fail(raw, file, "NONE takes no options or arguments");
    return { kind: "HEALTHCHECK", source: raw, command: null, options: {} };
  }
  if (type !== "CMD" || !match?.[2]) fail(raw, file, "expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE");
  const options: HealthcheckOptions = {};
  const names: [string, keyof HealthcheckOptions][] = [
    ["interval", "interval"],
    ["timeout", "timeout"],
    ["start-period", "startPeriod"],
    ["start-interval", "startInterval"],
    ["retries", "retries"],
  ];
  for (const [flag, key] of names) {
    const value = valueFlag(raw, file, flags, flag);
    if (value !== undefined) options[key] = value;
  }
  return { kind: "HEALTHCHECK", source: raw, command: commandForm(match[2]), options };
}

function parseOnbuild(raw: RawInstruction, file: string): Instruction {
  flagsOf(raw, file, []);
  requireArgs(raw, file);
  const trigger = raw.rest;
  const keyword = /^\S+/.exec(trigger)?.[0]?.toUpperCase() ?? "";
  if (keyword === "ONBUILD") fail(raw, file, "ONBUILD ONBUILD is not allowed");
  if (keyword === "FROM" || keyword === "MAINTAINER") fail(raw, file, `${keyword} is not allowed as an ONBUILD trigger`);
  // The trigger must be a valid instruction itself.
  const { flags, rest } = splitFlags(trigger.slice(keyword.length));
  const inner: RawInstruction = {
    ...raw,
    keyword,
    text: trigger,
    flags: flags.map((word): BuildFlag => {
      const eq = word.indexOf("=");
      return eq < 0 ? { name: word.slice(2), value: undefined } : { name: word.slice(2, eq), value: word.slice(eq + 1) };
    }),
    rest: rest.trim(),
    heredocs: [],
  };
  typeInstruction(inner, file);
  return { kind: "ONBUILD", source: raw, trigger };
}
