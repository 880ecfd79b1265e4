/** Asking the user at a terminal: a line, or a secret that is not echoed. */
import { UsageError } from "../index.js";

/** Read one line from the terminal; `secret` turns echo off. Usage error when stdin is not a terminal. */
export async function promptLine(question: string, flag: string, secret = false): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new UsageError(`standard input is not a terminal to ask for ${flag}`, { hint: `give ${flag}` });
  process.stderr.write(question);
  stdin.setRawMode(secret);
  stdin.setEncoding("utf8");
  stdin.resume();
  let line = "";
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (text: string): void => {
        for (const char of text) {
          if (char === "\r" || char === "\n") {
            stdin.off("data", onData);
            resolve(line);
            return;
          }
          if (char === "\u0003") {
            stdin.off("data", onData);
            reject(new UsageError("interrupted"));
            return;
          }
          if (char === "\u007f" || char === "\b") line = line.slice(0, -1);
          else line += char;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    if (secret) {
      stdin.setRawMode(false);
      process.stderr.write("\n");
    }
    stdin.pause();
  }
}
