/**
 * Evaluate one stage's instructions on its base's config, the way docker does without RUN: ENV, ARG and
 * LABEL with `$VAR` expansion, WORKDIR relative to the previous one, ENTRYPOINT resetting an inherited
 * CMD, shell forms wrapped in SHELL, HEALTHCHECK, ONBUILD (recorded, and a base's triggers applied).
 * Layers (COPY, ADD, a WORKDIR's directory) are handed to the caller, which builds them in order.
 */
import type { ExecutionConfig, ImageConfig } from "../image/config.js";
import { parsePorts } from "../mutate.js";
import { normalizePath } from "./fs-tree.js";
import { type CommandForm, type Instruction, type InstructionOf, typeInstruction } from "./instructions.js";
import { DockerfileError, parseDockerfile } from "./parser.js";
import { expandWord, expandWords } from "./shell-word.js";
import { argValue, type DockerfileOptions, type DockerfilePlan, type Stage, stageNamed } from "./stages.js";

/** Where a COPY takes its files from. */
export type CopySource = { kind: "context" } | { kind: "stage"; index: number } | { kind: "image"; reference: string };

/** A layer the stage adds, for the caller to build. */
export type LayerStep =
  | {
      kind: "copy";
      /** ADD: local tarballs are extracted, other files copied. */
      add: boolean;
      from: CopySource;
      /** Source paths or patterns, expanded, relative to the source's root (or the context). */
      sources: string[];
      /** Inline files from heredocs (`COPY <<EOF /dest`): name and expanded content. */
      inline: { name: string; content: string }[];
      /** Absolute destination; a trailing `/` means "into this directory". */
      dest: string;
      chown: { uid: number; gid: number } | undefined;
      chmod: number | undefined;
      link: boolean;
      createdBy: string;
      line: number;
    }
  | { kind: "workdir"; path: string; chown: { uid: number; gid: number } | undefined; createdBy: string; line: number };

/** What the builder does for the evaluator: layers, history, and name lookups in the stage's files. */
export interface StageBuilder {
  /** Build and append a layer (awaited: later lookups see its files). */
  addLayer(step: LayerStep): Promise<void>;
  /** Append a history entry with no layer. */
  addHistory(createdBy: string): void;
  /** A user's uid and primary gid in the stage's /etc/passwd as the stage stands; undefined if absent. */
  lookupUser(name: string): Promise<{ uid: number; gid: number } | undefined>;
  /** A group's gid in the stage's /etc/group as the stage stands; undefined if absent. */
  lookupGroup(name: string): Promise<number | undefined>;
}

/** The stage's evolving state. */
interface State {
  config: ExecutionConfig;
  author: string | undefined;
  args: Map<string, string | undefined>;
  /** CMD was set in this stage (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

const defaultShell = ["/bin/sh", "-c"];
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Evaluate a stage on `base` (its config, already resolved); returns the new config (rootfs and history untouched). */
export async function evaluateStage(
  plan: DockerfilePlan,
  stage: Stage,
  base: ImageConfig,
  builder: StageBuilder,
  options: DockerfileOptions,
): Promise<{ config: ExecutionConfig; author: string | undefined }> {
  const state: State = { config: structuredClone(base.config ?? {}), author: base.author, args: new Map(), cmdSet: false };
  // As both of docker's builders do, a stage whose base sets no PATH gets the usual one.
  if (!state.config.Env?.some((e) => e.startsWith("PATH="))) state.config.Env = [...(state.config.Env ?? []), `PATH=${defaultPath}`];
  const triggers = state.config.OnBuild ?? [];
  // The image records its own triggers; the base's run now, once.
  delete state.config.OnBuild;
  const context = { plan, stage, builder, options, state };
  for (const trigger of triggers as string[]) await evaluate(context, onbuildInstruction(trigger, plan, stage));
  for (const instruction of stage.body) await evaluate(context, instruction);
  return { config: state.config, author: state.author };
}

interface Context {
  plan: DockerfilePlan;
  stage: Stage;
  builder: StageBuilder;
  options: DockerfileOptions;
  state: State;
}

function onbuildInstruction(trigger: string, plan: DockerfilePlan, stage: Stage): Instruction {
  const parsed = parseDockerfile(`${trigger}\n`, `ONBUILD trigger of the base of line ${stage.from.source.line}`);
  const raw = parsed.instructions[0];
  if (!raw) throw new DockerfileError(plan.file, stage.from.source.line, `the base image has an empty ONBUILD trigger`);
  raw.line = stage.from.source.line;
  raw.endLine = stage.from.source.line;
  return typeInstruction(raw, plan.file);
}

/** The variables an instruction's words see: the stage's ARGs, overridden by its ENV. */
function variables(state: State): Map<string, string> {
  const vars = new Map<string, string>();
  for (const [name, value] of state.args) if (value !== undefined) vars.set(name, value);
  for (const entry of state.config.Env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) vars.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return vars;
}

function fail(context: Context, instruction: Instruction, message: string, hint?: string): never {
  throw new DockerfileError(context.plan.file, instruction.source.line, message, hint);
}

async function evaluate(context: Context, instruction: Instruction): Promise<void> {
  const { state, builder, plan } = context;
  const word = (text: string) => expandWord(text, variables(state), plan.escapeChar);
  switch (instruction.kind) {
    case "ARG":
      return evaluateArg(context, instruction);
    case "ENV":
    case "LABEL":
      return evaluatePairs(context, instruction, word);
    case "COPY":
    case "ADD":
      return builder.addLayer(await copyStep(context, instruction, word));
    case "WORKDIR":
      return evaluateWorkdir(context, instruction, word);
    case "USER":
      state.config.User = word(instruction.value);
      return builder.addHistory(`USER ${state.config.User}`);
    case "STOPSIGNAL":
      return evaluateStopSignal(context, instruction, word);
    case "MAINTAINER":
      state.author = instruction.value;
      return builder.addHistory(`MAINTAINER ${instruction.value}`);
    case "EXPOSE":
      return evaluateExpose(context, instruction);
    case "VOLUME":
      return evaluateVolume(context, instruction, word);
    case "ENTRYPOINT":
    case "CMD":
      return evaluateCommand(context, instruction);
    case "SHELL":
      state.config.Shell = "exec" in instruction.command ? instruction.command.exec : [];
      return builder.addHistory(`SHELL ${goList(state.config.Shell as string[])}`);
    case "HEALTHCHECK":
      return evaluateHealthcheck(context, instruction);
    case "ONBUILD":
      state.config.OnBuild = [...((state.config.OnBuild as string[] | undefined) ?? []), instruction.trigger];
      return builder.addHistory(`ONBUILD ${instruction.trigger}`);
    case "RUN":
      if (context.options.skipRun) {
        context.options.warn(`${plan.file}:${instruction.source.line}: RUN skipped (--skip-run): ${instruction.source.text}`);
        return;
      }
      return fail(
        context,
        instruction,
        "RUN is not supported: ocify builds images without running containers",
        "build the artifacts before the image and COPY them, or pass --skip-run to drop RUN lines",
      );
    case "FROM":
      return fail(context, instruction, "FROM inside a stage");
  }
}

function evaluateArg(context: Context, instruction: InstructionOf<"ARG">): void {
  const { state, plan, options } = context;
  const shown: string[] = [];
  for (const arg of instruction.args) {
    // `ARG NAME` in a stage takes the value of a global ARG or an automatic platform argument.
    const inherited = plan.globals.has(arg.name) ? plan.globals.get(arg.name) : plan.platformArgs.get(arg.name);
    const fallback = arg.value ?? inherited;
    const value =
      arg.value === undefined && options.buildArgs.get(arg.name) === undefined
        ? inherited
        : argValue(arg.name, fallback, variables(state), options, plan.escapeChar);
    state.args.set(arg.name, value);
    shown.push(value === undefined ? arg.name : `${arg.name}=${value}`);
  }
  context.builder.addHistory(`ARG ${shown.join(" ")}`);
}

function evaluatePairs(context: Context, instruction: InstructionOf<"ENV" | "LABEL">, word: (text: string) => string): void {
  const { state } = context;
  // Every value is expanded with the variables as they were before this instruction.
  const pairs = instruction.pairs.map(([key, value]) => [word(key), word(value)] as const);
  for (const [key, value] of pairs) {
    if (key === "") fail(context, instruction, `${instruction.kind} needs a name before =`);
    if (instruction.kind === "LABEL") state.config.Labels = { ...(state.config.Labels ?? {}), [key]: value };
    else {
      const env = [...(state.config.Env ?? [])];
      const at = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
      if (at >= 0) env[at] = `${key}=${value}`;
      else env.push(`${key}=${value}`);
      state.config.Env = env;
    }
  }
  context.builder.addHistory(`${instruction.kind} ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`);
}

/** Clean an absolute path: no `.`, `..` or doubled slashes. */
export function cleanAbsolute(path: string): string {
  return `/${normalizePath(path)}`;
}

/** A path relative to the working directory made absolute; a trailing `/` is kept. */
function resolvePath(workdir: string | undefined, path: string): string {
  const absolute = path.startsWith("/") ? path : `${workdir || "/"}/${path}`;
  const clean = cleanAbsolute(absolute);
  return (path.endsWith("/") || path.endsWith("/.") || path === ".") && clean !== "/" ? `${clean}/` : clean;
}

async function evaluateWorkdir(context: Context, instruction: InstructionOf<"WORKDIR">, word: (text: string) => string) {
  const { state, builder } = context;
  const path = word(instruction.value);
  if (path === "") fail(context, instruction, "WORKDIR needs a path");
  const resolved = cleanAbsolute(path.startsWith("/") ? path : `${state.config.WorkingDir || "/"}/${path}`);
  state.config.WorkingDir = resolved;
  // As BuildKit does, the directory is made in the image, owned by the current USER when it names one.
  const chown = state.config.User ? await resolveChown(context, instruction, state.config.User, true) : undefined;
  await builder.addLayer({ kind: "workdir", path: resolved, chown, createdBy: `WORKDIR ${resolved}`, line: instruction.source.line });
}

const signalNames = new Set(
  "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ".split(
    " ",
  ),
);

function evaluateStopSignal(context: Context, instruction: InstructionOf<"STOPSIGNAL">, word: (text: string) => string): void {
  const signal = word(instruction.value);
  const name = signal.toUpperCase().replace(/^SIG/, "");
  const number = /^\d+$/.test(signal) ? Number(signal) : undefined;
  const realtime = /^RTM(IN|AX)([+-]\d+)?$/.test(name);
  if (!(signalNames.has(name) || realtime || (number !== undefined && number >= 1 && number <= 64))) {
    fail(context, instruction, `STOPSIGNAL ${signal}: not a signal`, "write a name such as SIGTERM or a number");
  }
  context.state.config.StopSignal = signal;
  context.builder.addHistory(`STOPSIGNAL ${signal}`);
}

function evaluateExpose(context: Context, instruction: InstructionOf<"EXPOSE">): void {
  const { state, plan } = context;
  const words = instruction.values.flatMap((value) => expandWords(value, variables(state), plan.escapeChar));
  let ports: string[];
  try {
    ports = parsePorts(words);
  } catch (error) {
    fail(context, instruction, `EXPOSE: ${(error as Error).message.replace(/^(--expose|`config.expose`) /, "")}`);
  }
  state.config.ExposedPorts = { ...(state.config.ExposedPorts ?? {}) };
  for (const port of ports) state.config.ExposedPorts[port] = {};
  context.builder.addHistory(
    `EXPOSE map[${[...new Set(ports)]
      .sort()
      .map((p) => `${p}:{}`)
      .join(" ")}]`,
  );
}

function evaluateVolume(context: Context, instruction: InstructionOf<"VOLUME">, word: (text: string) => string): void {
  const { state } = context;
  const volumes = instruction.values.map(word);
  if (volumes.some((v) => v.trim() === "")) fail(context, instruction, "VOLUME paths cannot be empty");
  state.config.Volumes = { ...(state.config.Volumes ?? {}) };
  for (const volume of volumes) state.config.Volumes[volume] = {};
  context.builder.addHistory(`VOLUME ${goList(volumes)}`);
}

/** Go's `%q` of a string slice, as docker's history prints commands: `["a" "b"]`. */
function goQuoted(values: readonly string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(" ")}]`;
}

/** Go's `%v` of a string slice: `[a b]`. */
function goList(values: readonly string[]): string {
  return `[${values.join(" ")}]`;
}

/** Exec form as is; shell form wrapped in the stage's SHELL. */
function commandLine(state: State, command: CommandForm): string[] {
  if ("exec" in command) return command.exec;
  return [...((state.config.Shell as string[] | undefined) ?? defaultShell), command.shell];
}

function evaluateCommand(context: Context, instruction: InstructionOf<"ENTRYPOINT" | "CMD">): void {
  const { state } = context;
  const line = commandLine(state, instruction.command);
  if (instruction.kind === "CMD") {
    state.config.Cmd = line;
    state.cmdSet = true;
  } else {
    state.config.Entrypoint = line;
    // An ENTRYPOINT drops a CMD inherited from the base, not one this stage set.
    if (!state.cmdSet) state.config.Cmd = null;
  }
  context.builder.addHistory(`${instruction.kind} ${goQuoted(line)}`);
}

/** A Go duration (`1m30s`, `500ms`) in nanoseconds. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let match = re.exec(text); match; match = re.exec(text)) {
    total += Number(match[1]) * (units[match[2] as string] as number);
    matched = re.lastIndex;
  }
  return matched === text.length && matched > 0 ? Math.round(total) : undefined;
}

function evaluateHealthcheck(context: Context, instruction: InstructionOf<"HEALTHCHECK">): void {
  const { state } = context;
  if (instruction.command === null) {
    state.config.Healthcheck = { Test: ["NONE"] };
    context.builder.addHistory("HEALTHCHECK NONE");
    return;
  }
  const test = "exec" in instruction.command ? ["CMD", ...instruction.command.exec] : ["CMD-SHELL", instruction.command.shell];
  const healthcheck: Record<string, unknown> = { Test: test };
  const durations: [keyof typeof instruction.options, string][] = [
    ["interval", "Interval"],
    ["timeout", "Timeout"],
    ["startPeriod", "StartPeriod"],
    ["startInterval", "StartInterval"],
  ];
  for (const [option, field] of durations) {
    const text = instruction.options[option];
    if (text === undefined) continue;
    const ns = parseDuration(text);
    if (ns === undefined || (ns !== 0 && ns < 1e6))
      fail(context, instruction, `HEALTHCHECK --${option}=${text}: not a duration of at least 1ms`, "write e.g. 30s or 1m30s");
    if (ns !== 0) healthcheck[field] = ns;
  }
  if (instruction.options.retries !== undefined) {
    const retries = Number(instruction.options.retries);
    if (!Number.isInteger(retries) || retries < 0)
      fail(context, instruction, `HEALTHCHECK --retries=${instruction.options.retries}: not a whole number`);
    if (retries !== 0) healthcheck.Retries = retries;
  }
  state.config.Healthcheck = healthcheck;
  context.builder.addHistory(`HEALTHCHECK ${goQuoted(test)}`);
}

/**
 * `--chown=USER[:GROUP]` (and the owner of a WORKDIR made under USER): numbers as they are, names through
 * the stage's /etc/passwd and /etc/group. Without a group, a named user's primary group is taken, and a
 * numeric uid doubles as the gid (BuildKit's rules).
 */
async function resolveChown(
  context: Context,
  instruction: Instruction,
  spec: string,
  forUser = false,
): Promise<{ uid: number; gid: number }> {
  const [user = "", group] = spec.split(":", 2);
  const missing = (kind: string, name: string, file: string): never =>
    fail(
      context,
      instruction,
      `${forUser ? "USER" : "--chown"} ${spec}: no ${kind} "${name}" in the stage's ${file}`,
      "use a number, or add the name to the image first",
    );
  let owner: { uid: number; gid: number };
  if (/^\d+$/.test(user)) owner = { uid: Number(user), gid: Number(user) };
  else owner = (await context.builder.lookupUser(user)) ?? missing("user", user, "/etc/passwd");
  if (group === undefined || group === "") return owner;
  const gid = /^\d+$/.test(group) ? Number(group) : ((await context.builder.lookupGroup(group)) ?? missing("group", group, "/etc/group"));
  return { uid: owner.uid, gid };
}

async function copyStep(context: Context, instruction: InstructionOf<"COPY" | "ADD">, word: (text: string) => string): Promise<LayerStep> {
  const { state, plan, stage } = context;
  let from: CopySource = { kind: "context" };
  if (instruction.from !== undefined) {
    const value = word(instruction.from);
    if (value === "")
      fail(context, instruction, `--from=${instruction.from} is empty`, "declare the ARG it uses in this stage (ARG NAME after FROM)");
    const named = stageNamed(value, stage, plan.stages, plan.file, instruction.source.line);
    from = named ? { kind: "stage", index: named.index } : { kind: "image", reference: value };
  }
  const heredocNames = new Set(instruction.heredocs.map((h) => h.name));
  const sources: string[] = [];
  for (const source of instruction.sources) {
    const marker = /^<<-?(['"]?)(.+)\1$/.exec(source);
    if (marker && heredocNames.has(marker[2] as string)) continue;
    const expanded = word(source);
    if (instruction.kind === "ADD" && /^[a-z][a-z0-9+.-]*:\/\//i.test(expanded)) {
      fail(
        context,
        instruction,
        `ADD ${expanded}: remote sources are not fetched`,
        "download it before the build and ADD or COPY the file",
      );
    }
    sources.push(expanded);
  }
  const inline = instruction.heredocs.map((h) => ({
    name: h.name,
    content: h.expand ? expandHeredoc(h.content, variables(state), plan.escapeChar) : h.content,
  }));
  let chmod: number | undefined;
  if (instruction.chmod !== undefined) {
    const text = word(instruction.chmod);
    if (!/^[0-7]{1,4}$/.test(text)) fail(context, instruction, `--chmod=${text}: not an octal mode`, "write e.g. --chmod=755");
    chmod = Number.parseInt(text, 8);
  }
  return {
    kind: "copy",
    add: instruction.kind === "ADD",
    from,
    sources,
    inline,
    dest: resolvePath(state.config.WorkingDir, word(instruction.dest)),
    chown: instruction.chown === undefined ? undefined : await resolveChown(context, instruction, word(instruction.chown)),
    chmod,
    link: instruction.link,
    createdBy: `${instruction.source.text} # buildkit`,
    line: instruction.source.line,
  };
}

/** Expand `$VAR`s in a heredoc's body, keeping its quotes (a here-document is not a shell word). */
function expandHeredoc(content: string, vars: Map<string, string>, escapeChar: string): string {
  return content
    .split("\n")
    .map((line) =>
      line.replace(/(\\?)\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/g, (all, escaped: string, ref: string) =>
        escaped ? all.slice(1) : expandWord(`$${ref}`, vars, escapeChar),
      ),
    )
    .join("\n");
}
