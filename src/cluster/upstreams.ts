import { execFile } from "node:child_process";
import { readFile, rename, writeFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { EtcdConfig } from "../etcd/client.js";
import type { Registration } from "./announce.js";
import { RegistrationWatch } from "./registration-watch.js";
import { renderUpstream } from "./upstream-block.js";

export interface UpstreamFileOptions {
  etcd: EtcdConfig;
  prefix: string;
  out: string;
  /** The upstream's name in the block. */
  name: string;
  /** Shell command run after the file changed (e.g. "nginx -s reload"). */
  reload: string | undefined;
  log: Logger;
}

/**
 * Watches the registrations under the prefix and keeps the upstream file in step: written
 * atomically (temp file and rename), the reload command run only when the content changed.
 * Without etcd, or with no instance registered, the last file stays: an empty upstream would
 * take the registry down for every client.
 */
export class UpstreamFile {
  private readonly watch: RegistrationWatch;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: UpstreamFileOptions) {
    this.watch = new RegistrationWatch(options.etcd, options.prefix, (registrations) => this.update(registrations), options.log, "the last upstream file");
  }

  start(): void {
    this.watch.start();
  }

  private update(registrations: Registration[]): void {
    const content = renderUpstream(this.options.name, registrations);
    if (content === undefined) {
      this.options.log.warn("upstreams: no instance registered; keeping the last upstream file");
      return;
    }
    // One write at a time, in order: the last registrations seen are the ones on disk.
    this.writing = this.writing
      .then(() => this.write(content))
      .catch((err: unknown) => this.options.log.error({ err: (err as Error).message }, "upstreams: writing the upstream file failed"));
  }

  private async write(content: string): Promise<void> {
    const { out, reload, log } = this.options;
    const existing = await readFile(out, "utf8").catch(() => undefined);
    if (existing === content) return;
    const temp = `${out}.tmp-${process.pid}`;
    await writeFile(temp, content);
    await rename(temp, out);
    log.info({ out, servers: content.split("\n").filter((l) => l.includes("server ")).length }, "upstreams: upstream file written");
    if (!reload) return;
    await new Promise<void>((resolve) => {
      execFile("/bin/sh", ["-c", reload], { timeout: 30_000 }, (err, _stdout, stderr) => {
        // Each reload's outcome is said: on a fresh webrouter the first ones fail until nginx runs.
        if (err) log.error({ command: reload, err: err.message, stderr }, "upstreams: the reload command failed");
        else log.info({ command: reload }, "upstreams: reloaded");
        resolve();
      });
    });
  }

  /** Waits for the writes in progress (tests, shutdown). */
  async stop(): Promise<void> {
    this.watch.stop();
    await this.writing;
  }
}
