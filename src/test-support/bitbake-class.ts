/**
 * A test harness for meta-ocify's class without bitbake: it reads the class as bitbake does (assignments,
 * shell functions, Python `def`s), expands `${VAR}` and `${@python}` against the variables a build would
 * set, and writes the shell script bitbake would run for a task (its trap code, `set -e`, the functions,
 * the task body). The expansion runs in python3, so the class's own Python is what is tested.
 */
import { spawnSync } from "node:child_process";

/** Where the class lives in the repository, from the compiled dist/test-support/ directory. */
export const classPath = new URL("../../contrib/meta-ocify/classes/ocify-image.bbclass", import.meta.url).pathname;

// The expander: bitbake's two expansion regexes, its operators (=, ?=, ??=, +=, :=), shell functions up
// to a "}" in column 0, `def` blocks up to the next unindented line. Unknown ${VAR}s stay literal, as in
// bitbake, and are reported so that the test can refuse them.
const expander = String.raw`
import json, re, sys, shlex
spec = json.load(sys.stdin)
lines = open(spec["class"]).read().split("\n")
conf = dict(spec["vars"])
assign = re.compile(r'^([A-Za-z0-9_:\-+.]+)\s*(\?\?=|\?=|:=|\+=|=)\s*"(.*)"\s*$')
funcs, defs, i = {}, [], 0
while i < len(lines):
    line = lines[i]
    m = re.match(r'^(python\s+)?([A-Za-z0-9_]+)\(\)\s*\{\s*$', line)
    if m:
        body = []
        i += 1
        while lines[i] != "}":
            body.append(lines[i]); i += 1
        if not m.group(1):
            funcs[m.group(2)] = "\n".join(body)
    elif line.startswith("def "):
        block = [line]
        while i + 1 < len(lines) and (lines[i + 1].startswith((" ", "\t")) or lines[i + 1] == ""):
            i += 1; block.append(lines[i])
        defs.append("\n".join(block))
    else:
        a = assign.match(line)
        if a:
            name, op, value = a.groups()
            if op in ("?=", "??="):
                conf.setdefault(name, value)
            elif op == "+=":
                conf[name] = (conf.get(name, "") + " " + value).strip()
            elif name not in spec.get("fixed", []):
                conf[name] = value
    i += 1
unknown = set()
class Fatal(Exception): pass
class BB:
    @staticmethod
    def fatal(msg): raise Fatal(msg)
class D:
    def getVar(self, name, expand=True):
        v = conf.get(name)
        return expand_value(v) if v is not None and expand else v
d = D()
env = {"d": d, "bb": BB}
exec("\n\n".join(defs), env)
var_re = re.compile(r"\$\{[a-zA-Z0-9\-_+./~:]+?\}")
py_re = re.compile(r"\$\{@(?:\{.*?\}|.)+?\}")
def expand_value(s):
    while True:
        def var(m):
            name = m.group(0)[2:-1]
            if name in conf:
                return expand_value(conf[name])
            unknown.add(name)
            return m.group(0)
        def py(m):
            return str(eval(m.group(0)[3:-1], env))
        new = py_re.sub(py, var_re.sub(var, s))
        if new == s:
            return s
        s = new
try:
    out = {"funcs": {n: expand_value(b) for n, b in funcs.items()},
           "vars": {n: expand_value(conf[n]) for n in spec.get("want", [])}}
except Fatal as e:
    out = {"fatal": str(e)}
out["unknown"] = sorted(unknown)
print(json.dumps(out))
`;

/** The class's shell functions and chosen variables, expanded with `vars` as a build's configuration. */
export interface ExpandedClass {
  funcs: Record<string, string>;
  vars: Record<string, string>;
  /** `${NAME}` references no variable answered (bitbake would leave them in the script). */
  unknown: string[];
  /** A `bb.fatal()` raised while expanding (a configuration the class refuses). */
  fatal?: string;
}

/** Expand the class against `vars` (the build's variables, as local.conf and bitbake.conf would set them). */
export function expandClass(vars: Record<string, string>, want: readonly string[] = [], path = classPath): ExpandedClass {
  const result = spawnSync("python3", ["-c", expander], {
    input: JSON.stringify({ class: path, vars, want, fixed: Object.keys(vars) }),
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`expanding ${path} failed: ${result.stderr}`);
  const out = JSON.parse(result.stdout) as ExpandedClass;
  return { funcs: out.funcs ?? {}, vars: out.vars ?? {}, unknown: out.unknown, ...(out.fatal ? { fatal: out.fatal } : {}) };
}

// logging.bbclass's functions when there is no FIFO to bitbake (as in bitbake -c devshell): plain lines.
const logging = `bbnote() { echo "NOTE: $*"; }
bbwarn() { echo "WARNING: $*"; }
bbdebug() { :; }
bbfatal() { echo "ERROR: $*"; exit 1; }
bbfatal_log() { echo "ERROR: $*"; exit 1; }`;

// bitbake's shell prologue for /bin/sh (lib/bb/build.py shell_trap_code): an exit trap and set -e.
const prologue = `#!/bin/sh
bb_sh_exit_handler() {
    ret=$?
    if [ "$ret" != 0 ]; then
        echo "WARNING: exit code $ret from a shell command."
    fi
    exit $ret
}
trap 'bb_sh_exit_handler' 0
set -e`;

/**
 * The script bitbake runs for a task: its prologue, every shell function of the class, the task function
 * (`body`, e.g. an expanded IMAGE_CMD, then image.bbclass's `cd ${IMGDEPLOYDIR}`), a cd and the call.
 */
export function taskScript(expanded: ExpandedClass, task: string, body: string, cwd: string, exports: Record<string, string> = {}): string {
  const functions = Object.entries(expanded.funcs)
    .filter(([name]) => name !== task)
    .map(([name, text]) => `${name}() {\n${text}\n}`);
  const exported = Object.entries(exports).map(([name, value]) => `export ${name}="${value.replace(/["$`\\]/g, "\\$&")}"`);
  return [
    prologue,
    ...exported,
    logging,
    ...functions,
    `${task}() {\n${body}\n}`,
    `cd '${cwd}'`,
    task,
    "ret=$?",
    "trap '' 0",
    "exit $ret",
    "",
  ].join("\n");
}
