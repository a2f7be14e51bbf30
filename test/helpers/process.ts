import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { createServer } from "node:net";
import { call } from "./http.js";

export const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;

let binFlags: string[] | undefined;

/**
 * The node flags of the built CLI's first line (`#!/usr/bin/env -S node FLAGS`), read at the
 * first spawn (the CLI is built by then).
 */
export function binNodeFlags(): string[] {
  binFlags ??= readFileSync(CLI, "utf8").split("\n", 1)[0]!.split(/\s+/).slice(3);
  return binFlags;
}

/**
 * process.execPath's arguments that run the built CLI with `args` as its bin does, with its node
 * flags, so that tests and benchmarks measure the server its launchers start.
 */
export function cliArgs(...args: string[]): string[] {
  return [...binNodeFlags(), CLI, ...args];
}

/** Runs the built CLI to completion: its exit code and output. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, cliArgs(...args));
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls GET /v2/ until it answers (bounded), or the process exits. */
export async function waitForRegistry(url: string, child: ChildProcess, output: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${output()}`);
    try {
      const reply = await call("GET", `${url}/v2/`);
      if (reply.status === 200 || reply.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms: ${output()}`);
}

/** A long-running child process: what it printed (bounded), and how to stop it. */
export interface Supervised {
  child: ChildProcess;
  /** The last 4 KB of stdout and stderr, for failure messages. */
  output(): string;
  /** What it wrote to stdout and stderr so far (the last 4–8 MiB of a long run). */
  fullOutput(): string;
  /** Sends a signal and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Keeps what a child prints and gives it a stop. */
export function supervise(child: ChildProcess): Supervised {
  let log = "";
  // Bounded: a benchmark's access log would otherwise fill the memory.
  const keep = (c: Buffer) => {
    log += c.toString();
    if (log.length > 8 * 1024 * 1024) log = log.slice(-4 * 1024 * 1024);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return {
    child,
    output: () => log.slice(-4000),
    fullOutput: () => log,
    stop: (signal = "SIGTERM") =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill(signal);
      }),
  };
}

export interface ServerProcess extends Supervised {
  url: string;
  host: string;
}

/** Runs a command that serves a registry on `port` and waits until it answers. */
export async function startServerProcess(command: string, args: string[], port: number, env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const supervised = supervise(spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] }));
  const url = `http://127.0.0.1:${port}`;
  await waitForRegistry(url, supervised.child, supervised.output);
  return { ...supervised, url, host: `127.0.0.1:${port}` };
}

/** lain-registry as its own process (built CLI), configured by a YAML file. */
export async function startLainProcess(configPath: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  return startServerProcess(process.execPath, cliArgs("serve", configPath), port, {
    ...process.env,
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    ...env,
  });
}
