/**
 * The Dockerfile's lines as instructions: parser directives (`# syntax=`, `# escape=`), comments, line
 * continuations, `--flag` options and heredocs (`COPY <<EOF`), each instruction with the lines it came
 * from. What the instructions mean is src/dockerfile/instructions.ts's business; nothing is expanded here.
 */
import { UsageError } from "../errors.js";

/** A `<<NAME` here-document: the lines that follow its instruction, up to a line holding only NAME. */
export interface Heredoc {
  name: string;
  /** The content, each line with its newline; for `<<-`, leading tabs already removed. */
  content: string;
  /** Variables in the content are expanded when the name was not quoted (`<<EOF`, not `<<"EOF"`). */
  expand: boolean;
}

/** A `--name=value` option of an instruction (`COPY --from=build`); a bare `--link` has no value. */
export interface BuildFlag {
  name: string;
  value: string | undefined;
}

/** One instruction as written. */
export interface RawInstruction {
  /** The instruction's name in upper case: `COPY`. */
  keyword: string;
  /** First and last line numbers (1-based) in the Dockerfile, heredocs included. */
  line: number;
  endLine: number;
  /** The instruction on one line, continuations joined, as docker's history shows it. */
  text: string;
  flags: BuildFlag[];
  /** Everything after the keyword and its flags, trimmed. */
  rest: string;
  heredocs: Heredoc[];
  /** The escapeChar character in effect (`\` unless `# escape=` says otherwise). */
  escapeChar: string;
}

/** A parsed Dockerfile. */
export interface ParsedDockerfile {
  /** The file name used in messages. */
  file: string;
  /** The escapeChar character: `\` or a backtick (`# escape=`). */
  escapeChar: string;
  /** Parser directives by lower-case name (`syntax`, `escapeChar`, `check`). */
  directives: Map<string, string>;
  instructions: RawInstruction[];
}

/** An error in a Dockerfile, naming the file and line; the build has not started (exit 2). */
export class DockerfileError extends UsageError {
  constructor(file: string, line: number, message: string, hint?: string) {
    super(`${file}:${line}: ${message}`, hint === undefined ? {} : { hint });
  }
}

const knownDirectives = new Set(["syntax", "escape", "check"]);
const heredocKeywords = new Set(["COPY", "ADD", "RUN"]);

/** Is this line a comment (`#` after optional whitespace)? */
function isComment(line: string): boolean {
  return /^[ \t]*#/.test(line);
}

/**
 * Read the parser directives at the top of the file. They stop at the first line that is not one: an
 * instruction, an empty line, a comment, or a directive ocify does not know (read as a comment).
 */
function readDirectives(lines: readonly string[], file: string): { directives: Map<string, string>; next: number } {
  const directives = new Map<string, string>();
  let index = 0;
  for (; index < lines.length; index++) {
    const match = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.*?)[ \t]*$/.exec(lines[index] as string);
    const name = match?.[1]?.toLowerCase();
    if (!match || !name || !knownDirectives.has(name)) break;
    if (directives.has(name)) throw new DockerfileError(file, index + 1, `the parser directive "${name}" is given twice`);
    directives.set(name, match[2] as string);
  }
  const escapeChar = directives.get("escape");
  if (escapeChar !== undefined && escapeChar !== "\\" && escapeChar !== "`") {
    throw new DockerfileError(file, 1, `invalid escapeChar character "${escapeChar}"`, "use # escape=\\ or # escape=`");
  }
  return { directives, next: index };
}

/** The line without a trailing continuation (the escapeChar character, then blanks), and whether it had one. */
function cutContinuation(line: string, escapeChar: string): { text: string; continues: boolean } {
  const trimmed = line.replace(/[ \t]+$/, "");
  if (trimmed.endsWith(escapeChar)) return { text: trimmed.slice(0, -1), continues: true };
  return { text: line, continues: false };
}

/** Split the options at the start of `args` (words beginning with `--`) from the rest. */
export function splitFlags(args: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < args.length && /\s/.test(args[pos] as string)) pos++;
    if (!args.startsWith("--", pos)) return { flags, rest: args.slice(pos) };
    let word = "";
    let quote: string | undefined;
    for (; pos < args.length; pos++) {
      const ch = args[pos] as string;
      if (quote === undefined && /\s/.test(ch)) break;
      if (quote === undefined && (ch === "'" || ch === '"')) quote = ch;
      else if (ch === quote) quote = undefined;
      else if (ch === "\\" && pos + 1 < args.length) word += args[++pos];
      else word += ch;
    }
    if (word === "--") return { flags, rest: args.slice(pos).trimStart() };
    flags.push(word);
  }
}

function parseFlag(word: string): BuildFlag {
  const eq = word.indexOf("=");
  return eq < 0 ? { name: word.slice(2), value: undefined } : { name: word.slice(2, eq), value: word.slice(eq + 1) };
}

/**
 * The heredocs an instruction opens: words `<<NAME` or `<<-NAME` (optionally after a file descriptor
 * number, as RUN allows), with NAME possibly quoted. Returns each name, and whether it was quoted.
 */
export function heredocMarkers(rest: string): { name: string; strip: boolean; expand: boolean }[] {
  const markers: { name: string; strip: boolean; expand: boolean }[] = [];
  for (const word of rest.split(/[ \t]+/)) {
    const match = /^\d*<<(-?)(.+)$/.exec(word);
    if (!match) continue;
    const raw = match[2] as string;
    if (raw.startsWith("<")) continue; // `<<<` is a here-string, not a heredoc
    const name = raw.replace(/^(['"])(.*)\1$/, "$2");
    if (name === "" || /['"\s]/.test(name)) continue;
    markers.push({ name, strip: match[1] === "-", expand: name === raw });
  }
  return markers;
}

/** Parse a Dockerfile's text into its directives and raw instructions. */
export function parseDockerfile(text: string, file = "Dockerfile"): ParsedDockerfile {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const { directives, next } = readDirectives(lines, file);
  const escapeChar = directives.get("escape") ?? "\\";
  const instructions: RawInstruction[] = [];
  let index = next;
  while (index < lines.length) {
    const first = lines[index] as string;
    index++;
    if (isComment(first) || first.trim() === "") continue;
    const start = index;
    let { text: joined, continues } = cutContinuation(first.trimStart(), escapeChar);
    while (continues && index < lines.length) {
      const line = lines[index] as string;
      index++;
      // Comments and empty lines inside a continued instruction are dropped (docker warns about the latter).
      if (isComment(line) || line.trim() === "") continue;
      const cut = cutContinuation(line, escapeChar);
      joined += cut.text;
      continues = cut.continues;
    }
    const instruction = rawInstruction(joined, start, file, escapeChar);
    if (heredocKeywords.has(instruction.keyword)) index = readHeredocs(instruction, lines, index, file);
    instruction.endLine = index;
    instructions.push(instruction);
  }
  return { file, escapeChar, directives, instructions };
}

function rawInstruction(joined: string, line: number, file: string, escapeChar: string): RawInstruction {
  const text = joined.trim();
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text);
  const keyword = (match?.[1] ?? "").toUpperCase();
  if (!/^[A-Z]+$/.test(keyword)) throw new DockerfileError(file, line, `"${match?.[1] ?? text}" is not an instruction`);
  const { flags, rest } = splitFlags(match?.[2] ?? "");
  return { keyword, line, endLine: line, text, flags: flags.map(parseFlag), rest: rest.trim(), heredocs: [], escapeChar };
}

/** Read the bodies of the heredocs `instruction` opens, from line `index` on; returns the next line's index. */
function readHeredocs(instruction: RawInstruction, lines: readonly string[], index: number, file: string): number {
  for (const marker of heredocMarkers(instruction.rest)) {
    let content = "";
    let closed = false;
    while (index < lines.length) {
      let line = lines[index] as string;
      index++;
      if (marker.strip) line = line.replace(/^\t+/, "");
      if (line === marker.name) {
        closed = true;
        break;
      }
      content += `${line}\n`;
    }
    if (!closed) {
      throw new DockerfileError(
        file,
        instruction.line,
        `the heredoc <<${marker.name} is not closed`,
        `end it with a line holding only ${marker.name}`,
      );
    }
    instruction.heredocs.push({ name: marker.name, content, expand: marker.expand });
  }
  return index;
}
