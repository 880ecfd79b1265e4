/**
 * A Dockerfile's stages: which stage each FROM starts, what it builds on (scratch, an image, an earlier
 * stage), the build arguments in scope for the FROM lines, and which stages the target needs. BuildKit's
 * rules: only the target and the stages it depends on (through FROM or COPY --from) are built.
 */
import type { Platform } from "../image/descriptor.js";
import { formatPlatform, parsePlatform } from "../image/descriptor.js";
import { type Instruction, type InstructionOf, typeInstructions } from "./instructions.js";
import { DockerfileError, type ParsedDockerfile } from "./parser.js";
import { expandWord, type Variables } from "./shell-word.js";

/** What a build of a Dockerfile is given besides the file and its context. */
export interface DockerfileOptions {
  /** `--build-arg KEY=VALUE` values. */
  buildArgs: ReadonlyMap<string, string>;
  /** `--target`: the stage to build (default: the last). */
  target?: string | undefined;
  /** The platform the image is built for. */
  platform: Platform;
  /** The platform ocify runs on (BUILDPLATFORM). */
  buildPlatform: Platform;
  /** Drop RUN instructions with a warning each instead of refusing the Dockerfile. */
  skipRun?: boolean | undefined;
  /** Where warnings go (one line each). */
  warn: (message: string) => void;
}

/** What a stage starts from. */
export type StageBase =
  | { kind: "scratch" }
  | { kind: "stage"; index: number }
  | { kind: "image"; reference: string; platform: Platform | undefined };

/** One FROM and the instructions after it. */
export interface Stage {
  index: number;
  /** The `AS name`, lower-cased. */
  name: string | undefined;
  base: StageBase;
  from: InstructionOf<"FROM">;
  body: Instruction[];
}

/** The stages of a Dockerfile, resolved for one platform. */
export interface DockerfilePlan {
  file: string;
  escapeChar: string;
  stages: Stage[];
  /** The stage whose image is the result. */
  target: number;
  /** The stages to build, each after those it depends on, the target last. */
  order: number[];
  /** Build arguments declared before the first FROM, with their values (for `ARG NAME` in a stage). */
  globals: Map<string, string | undefined>;
  /** The automatic platform arguments (TARGETPLATFORM, BUILDARCH…). */
  platformArgs: Map<string, string>;
}

/** Build arguments docker accepts without a declaring ARG. */
const predefinedArgs = new Set(
  ["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"].flatMap((name) => [name, name.toLowerCase()]),
);

/** TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT and the BUILD* ones. */
export function platformArgs(platform: Platform, buildPlatform: Platform): Map<string, string> {
  const args = new Map<string, string>();
  for (const [prefix, p] of [
    ["TARGET", platform],
    ["BUILD", buildPlatform],
  ] as const) {
    args.set(`${prefix}PLATFORM`, formatPlatform(p));
    args.set(`${prefix}OS`, p.os);
    args.set(`${prefix}ARCH`, p.architecture);
    args.set(`${prefix}VARIANT`, p.variant ?? "");
  }
  return args;
}

/** The value of a declared argument: the --build-arg, else its default expanded, else unset. */
export function argValue(name: string, fallback: string | undefined, vars: Variables, options: DockerfileOptions, escapeChar: string) {
  const given = options.buildArgs.get(name);
  if (given !== undefined) return given;
  return fallback === undefined ? undefined : expandWord(fallback, vars, escapeChar);
}

/** Build arguments before the first FROM, expanded in order. */
function readGlobals(instructions: readonly Instruction[], options: DockerfileOptions, escapeChar: string, automatic: Map<string, string>) {
  const globals = new Map<string, string | undefined>();
  const vars = new Map(automatic);
  for (const instruction of instructions) {
    if (instruction.kind !== "ARG") {
      throw new DockerfileError(
        "Dockerfile",
        instruction.source.line,
        `${instruction.kind} before the first FROM`,
        "only ARG may come before FROM",
      );
    }
    for (const arg of instruction.args) {
      const value = argValue(arg.name, arg.value, vars, options, escapeChar);
      globals.set(arg.name, value);
      if (value === undefined) vars.delete(arg.name);
      else vars.set(arg.name, value);
    }
  }
  return { globals, vars };
}

/** Split the typed instructions into stages and resolve what each FROM names. */
export function planDockerfile(parsed: ParsedDockerfile, options: DockerfileOptions): DockerfilePlan {
  const instructions = typeInstructions(parsed);
  const firstFrom = instructions.findIndex((i) => i.kind === "FROM");
  if (firstFrom < 0)
    throw new DockerfileError(parsed.file, 1, "no FROM instruction", "a Dockerfile starts with FROM image (or FROM scratch)");
  const automatic = platformArgs(options.platform, options.buildPlatform);
  const { globals, vars } = readGlobals(instructions.slice(0, firstFrom), options, parsed.escapeChar, automatic);
  const stages: Stage[] = [];
  for (const instruction of instructions.slice(firstFrom)) {
    if (instruction.kind === "FROM") stages.push(stageFrom(instruction, stages, vars, parsed));
    else stages[stages.length - 1]?.body.push(instruction);
  }
  const target = findTarget(stages, options.target, parsed.file);
  const order = buildOrder(stages, target, vars, parsed);
  warnUnusedArgs(stages, order, globals, options);
  return { file: parsed.file, escapeChar: parsed.escapeChar, stages, target, order, globals, platformArgs: automatic };
}

function stageFrom(from: InstructionOf<"FROM">, stages: readonly Stage[], vars: Variables, parsed: ParsedDockerfile): Stage {
  const image = expandWord(from.image, vars, parsed.escapeChar);
  if (image === "")
    throw new DockerfileError(parsed.file, from.source.line, `FROM ${from.image}: the image name is empty`, "set the ARG it uses");
  const name = from.stageName;
  if (name !== undefined && stages.some((s) => s.name === name)) {
    throw new DockerfileError(parsed.file, from.source.line, `the stage name "${name}" is used twice`);
  }
  const earlier = stages.find((s) => s.name !== undefined && s.name === image.toLowerCase());
  let base: StageBase;
  if (earlier) base = { kind: "stage", index: earlier.index };
  else if (image.toLowerCase() === "scratch") base = { kind: "scratch" };
  else {
    const platformText = from.platform === undefined ? undefined : expandWord(from.platform, vars, parsed.escapeChar);
    base = { kind: "image", reference: image, platform: platformText ? parsePlatform(platformText) : undefined };
  }
  return { index: stages.length, name, base, from, body: [] };
}

function findTarget(stages: readonly Stage[], target: string | undefined, file: string): number {
  if (target === undefined) return stages.length - 1;
  const found = stages.find((s) => s.name === target.toLowerCase());
  if (!found) {
    const names = stages.map((s) => s.name).filter((n) => n !== undefined);
    throw new DockerfileError(
      file,
      1,
      `no stage named "${target}"`,
      names.length ? `the stages are: ${names.join(", ")}` : "name a stage with FROM image AS name",
    );
  }
  return found.index;
}

/**
 * The stage a `COPY --from` names, by name or index, or undefined for an image reference. As in BuildKit,
 * a stage may copy from one defined after it (the stages form a graph); copying from itself is refused.
 */
export function stageNamed(value: string, current: Stage, stages: readonly Stage[], file: string, line: number): Stage | undefined {
  const byName = stages.find((s) => s.name !== undefined && s.name === value.toLowerCase());
  const byIndex = /^\d+$/.test(value) ? stages[Number(value)] : undefined;
  const stage = byName ?? byIndex;
  if (stage && stage.index === current.index) {
    throw new DockerfileError(file, line, `COPY --from=${value} names the stage it is in`, "copy from another stage");
  }
  return stage;
}

/** The stages the target needs, dependencies first. */
function buildOrder(stages: readonly Stage[], target: number, vars: Variables, parsed: ParsedDockerfile): number[] {
  const order: number[] = [];
  const visiting = new Set<number>();
  const visit = (index: number, line: number): void => {
    if (order.includes(index)) return;
    if (visiting.has(index))
      throw new DockerfileError(
        parsed.file,
        line,
        "the stages depend on each other in a circle",
        "break the cycle of FROM and COPY --from",
      );
    visiting.add(index);
    const stage = stages[index] as Stage;
    if (stage.base.kind === "stage") visit(stage.base.index, stage.from.source.line);
    for (const instruction of stage.body) {
      if (instruction.kind !== "COPY" || instruction.from === undefined) continue;
      // --from may use the stage's ARGs; names of stages never do in practice, so the global scope decides here.
      const value = expandWord(instruction.from, vars, parsed.escapeChar);
      const named = stageNamed(value, stage, stages, parsed.file, instruction.source.line);
      if (named) visit(named.index, instruction.source.line);
    }
    visiting.delete(index);
    order.push(index);
  };
  visit(target, stages[target]?.from.source.line ?? 1);
  return order;
}

function warnUnusedArgs(
  stages: readonly Stage[],
  order: readonly number[],
  globals: Map<string, string | undefined>,
  options: DockerfileOptions,
): void {
  const declared = new Set(globals.keys());
  for (const index of order) {
    for (const instruction of stages[index]?.body ?? []) {
      if (instruction.kind === "ARG") for (const arg of instruction.args) declared.add(arg.name);
    }
  }
  const unused = [...options.buildArgs.keys()].filter((name) => !declared.has(name) && !predefinedArgs.has(name));
  if (unused.length) options.warn(`the build arguments ${unused.join(", ")} were not used (no ARG declares them)`);
}
