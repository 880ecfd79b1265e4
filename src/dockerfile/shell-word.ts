/**
 * Variable expansion and quote removal in Dockerfile words, as the Dockerfile reference describes it:
 * `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`,
 * single quotes literal, double quotes expanding, the escapeChar character (`\` or the `# escape=` one)
 * protecting the next character. This is not a shell: no command substitution, globbing or arithmetic.
 */
import { UsageError } from "../errors.js";

/** Variables visible to an instruction: its ARGs and ENVs, later ones winning. */
export type Variables = ReadonlyMap<string, string>;

/** How a word is processed. */
interface Lexer {
  readonly text: string;
  pos: number;
  readonly escapeChar: string;
  readonly vars: Variables;
  /** Split on unquoted whitespace into several words (EXPOSE, `ProcessWords`), or keep one word. */
  readonly split: boolean;
}

/** Accumulates words; whitespace outside quotes ends a word when splitting. */
class WordBuilder {
  readonly words: string[] = [];
  private current = "";
  /** The current word has content, even empty quotes (`""` is a word). */
  private started = false;

  constructor(private readonly split: boolean) {}

  /** Add text that came from outside quotes: whitespace separates words when splitting. */
  addUnquoted(text: string): void {
    for (const ch of text) {
      if (this.split && /\s/.test(ch)) this.end();
      else this.addRaw(ch);
    }
  }

  /** Add text that whitespace does not split (quoted or escaped). */
  addRaw(text: string): void {
    this.current += text;
    this.started = true;
  }

  /** Mark that a (possibly empty) quoted string was here: `""` still makes a word. */
  touch(): void {
    this.started = true;
  }

  end(): void {
    if (this.started) this.words.push(this.current);
    this.current = "";
    this.started = false;
  }
}

function syntaxError(lexer: Lexer, what: string): UsageError {
  return new UsageError(`${what} in "${lexer.text}"`, { hint: "check the quotes and ${…} braces of this word" });
}

/** Read until `stop` (not consumed) or the end, expanding as in an unquoted context. */
function processUntil(lexer: Lexer, builder: WordBuilder, stop: string | undefined): void {
  while (lexer.pos < lexer.text.length) {
    const ch = lexer.text[lexer.pos] as string;
    if (stop !== undefined && ch === stop) return;
    lexer.pos++;
    if (ch === "'") processSingleQuote(lexer, builder);
    else if (ch === '"') processDoubleQuote(lexer, builder);
    else if (ch === "$") builder.addUnquoted(processDollar(lexer));
    else if (ch === lexer.escapeChar) {
      // An escapeChar at the very end of the text is dropped; otherwise the next character is literal.
      if (lexer.pos < lexer.text.length) builder.addRaw(nextChar(lexer));
    } else builder.addUnquoted(ch);
  }
}

function nextChar(lexer: Lexer): string {
  const code = lexer.text.codePointAt(lexer.pos) as number;
  const ch = String.fromCodePoint(code);
  lexer.pos += ch.length;
  return ch;
}

function processSingleQuote(lexer: Lexer, builder: WordBuilder): void {
  const end = lexer.text.indexOf("'", lexer.pos);
  if (end < 0) throw syntaxError(lexer, "unexpected end of text: a ' is not closed");
  builder.addRaw(lexer.text.slice(lexer.pos, end));
  builder.touch();
  lexer.pos = end + 1;
}

function processDoubleQuote(lexer: Lexer, builder: WordBuilder): void {
  builder.touch();
  while (lexer.pos < lexer.text.length) {
    const ch = nextChar(lexer);
    if (ch === '"') return;
    if (ch === "$") builder.addRaw(processDollar(lexer));
    else if (ch === lexer.escapeChar && lexer.pos < lexer.text.length) {
      // Inside double quotes only `"`, `$` and the escapeChar character itself can be escaped.
      const next = lexer.text[lexer.pos] as string;
      if (next === '"' || next === "$" || next === lexer.escapeChar) builder.addRaw(nextChar(lexer));
      else builder.addRaw(ch);
    } else builder.addRaw(ch);
  }
  throw syntaxError(lexer, 'unexpected end of text: a " is not closed');
}

/** A name after `$`: letters, digits and `_`, or a run of digits (positional, always empty here). */
function readName(lexer: Lexer): string {
  const rest = lexer.text.slice(lexer.pos);
  const match = /^[0-9]+/.exec(rest) ?? /^[A-Za-z0-9_]*/.exec(rest);
  const name = match?.[0] ?? "";
  lexer.pos += name.length;
  return name;
}

/** Expand what follows a `$` (already consumed). */
function processDollar(lexer: Lexer): string {
  if (lexer.text[lexer.pos] !== "{") {
    const name = readName(lexer);
    return name === "" ? "$" : (lexer.vars.get(name) ?? "");
  }
  lexer.pos++;
  const name = readName(lexer);
  if (name === "") throw syntaxError(lexer, "a ${} with no variable name");
  const value = lexer.vars.get(name);
  if (lexer.text[lexer.pos] === "}") {
    lexer.pos++;
    return value ?? "";
  }
  const colon = lexer.text[lexer.pos] === ":";
  if (colon) lexer.pos++;
  const modifier = lexer.text[lexer.pos];
  if (modifier !== "-" && modifier !== "+" && modifier !== "?") {
    throw syntaxError(lexer, `unsupported modifier "${colon ? ":" : ""}${modifier ?? ""}" in \${${name}…}`);
  }
  lexer.pos++;
  const inner = expandInner(lexer);
  if (lexer.text[lexer.pos] !== "}") throw syntaxError(lexer, `\${${name}… is not closed with }`);
  lexer.pos++;
  const set = value !== undefined && (!colon || value !== "");
  if (modifier === "-") return set ? (value as string) : inner;
  if (modifier === "+") return set ? inner : "";
  if (!set) throw new UsageError(`${name}: ${inner || "is not set"}`, { hint: `set ${name} with ARG, ENV or --build-arg` });
  return value as string;
}

/** Expand the word inside `${NAME:-…}` up to its closing brace, moving the lexer past it. */
function expandInner(lexer: Lexer): string {
  const inner: Lexer = { text: lexer.text, pos: lexer.pos, escapeChar: lexer.escapeChar, vars: lexer.vars, split: false };
  const builder = new WordBuilder(false);
  processUntil(inner, builder, "}");
  builder.end();
  lexer.pos = inner.pos;
  return builder.words.join("");
}

/** Expand variables and remove quotes and escapes in one word (ENV values, COPY paths, WORKDIR…). */
export function expandWord(text: string, vars: Variables, escapeChar = "\\"): string {
  const lexer: Lexer = { text, pos: 0, escapeChar, vars, split: false };
  const builder = new WordBuilder(false);
  processUntil(lexer, builder, undefined);
  builder.end();
  return builder.words.join("");
}

/** Expand like expandWord, then split on whitespace outside quotes (EXPOSE, the words of FROM). */
export function expandWords(text: string, vars: Variables, escapeChar = "\\"): string[] {
  const lexer: Lexer = { text, pos: 0, escapeChar, vars, split: true };
  const builder = new WordBuilder(true);
  processUntil(lexer, builder, undefined);
  builder.end();
  return builder.words;
}
