// @ts-check
/** Runs a program on the chosen Node: in place when this Node can, else as a child it stands for. */
import { spawn } from "node:child_process";

/**
 * Becomes `node args...` (process.execve, Node 22.15 and later: one process, the same pid, the
 * signals its own), or on an older Node runs it as a child, passing it the signals a supervisor
 * sends and leaving with its exit status.
 * @param {string} node
 * @param {string[]} args
 */
export function execNode(node, args) {
  if (typeof process.execve === "function") {
    process.execve(node, [node, ...args], process.env);
    return;
  }
  const child = spawn(node, args, { stdio: "inherit" });
  for (const signal of /** @type {NodeJS.Signals[]} */ (["SIGTERM", "SIGINT", "SIGHUP"])) process.on(signal, () => child.kill(signal));
  child.on("error", (err) => {
    process.stderr.write(`lain-registry: cannot run ${node}: ${err.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
}
