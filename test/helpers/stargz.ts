import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What a lazy pull needs on the machine (Debian: golang-go, golang-github-containerd-stargz-snapshotter-dev, stargz-snapshotter, containerd, runc, umoci, busybox-static). */
export const STARGZ_TOOLS = ["go", "ctr-remote", "ctr", "containerd", "runc", "umoci", "busybox"];

/** Whether this process may mount FUSE filesystems (root, as CI runs); with REQUIRE_INTEGRATION=1 it must. */
export function canMountFuse(): boolean {
  const can = process.getuid?.() === 0 && existsSync("/dev/fuse");
  if (!can && process.env.REQUIRE_INTEGRATION === "1") throw new Error("FUSE mounts are required (REQUIRE_INTEGRATION=1): run as root, with /dev/fuse");
  return can;
}

const DAEMON_SOURCE = new URL("./stargz/main.go", import.meta.url).pathname;
/** Survives a run: the daemon is built once per version of its source. */
const BUILD_ROOT = "/tmp/lain-stargz-build";

/**
 * The snapshotter daemon (./stargz/main.go), built from Debian's Go library packages with the Go
 * toolchain in GOPATH mode (about 30 s the first time); its path.
 */
export async function buildStargzDaemon(): Promise<string> {
  const source = await readFile(DAEMON_SOURCE);
  const version = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const binary = join(BUILD_ROOT, version, "containerd-stargz-grpc");
  if (await stat(binary).then(() => true, () => false)) return binary;
  const gopath = join(BUILD_ROOT, version, "gopath");
  const pkg = join(gopath, "src", "lainstargz");
  await mkdir(pkg, { recursive: true });
  await copyFile(DAEMON_SOURCE, join(pkg, "main.go"));
  await run("go", ["build", "-o", `${binary}.partial`, "."], {
    cwd: pkg,
    timeout: 600_000,
    env: { ...process.env, GO111MODULE: "off", GOPATH: `${gopath}:/usr/share/gocode`, GOCACHE: join(BUILD_ROOT, "gocache"), GOFLAGS: "-mod=", CGO_ENABLED: "1" },
  });
  await run("mv", [`${binary}.partial`, binary]);
  return binary;
}

/** A node that pulls lazily: a private containerd whose "stargz" snapshotter reads layers from `registry`. */
export interface LazyNode {
  /** ctr against this node's containerd, in the test's namespace; its stdout. */
  ctr(...args: string[]): Promise<string>;
  /** ctr-remote likewise (rpull, convert). */
  ctrRemote(...args: string[]): Promise<string>;
  /** Runs `command` in a container of `image` on its snapshot (the stargz snapshotter's unless said); its stdout. */
  runContainer(image: string, command: string[], snapshotter?: string): Promise<string>;
  /** The hosts.toml directory that sends pulls of `host`'s images to the registry over plain HTTP. */
  hostsDir: string;
  stop(): Promise<void>;
}

const NAMESPACE = "lain-lazy";

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

async function waitFor(path: string, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await stat(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not appear at ${path}`);
}

/**
 * Starts the snapshotter daemon and a containerd using it as proxy plugin "stargz", both with
 * everything under `work`. `host` is the registry the images are named by; `registry` the one
 * both containerd and the snapshotter actually read from (a node mirror), plain HTTP.
 */
export async function startLazyNode(work: string, daemon: string, host: string, registry: string): Promise<LazyNode> {
  await mkdir(work, { recursive: true });
  const socket = join(work, "containerd.sock");
  const stargzSocket = join(work, "stargz.sock");
  const children: ChildProcess[] = [];
  children.push(spawn(daemon, ["--address", stargzSocket, "--root", join(work, "stargz"), "--registry", registry], { stdio: "ignore" }));
  const config = join(work, "containerd.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${join(work, "root")}"`,
      `state = "${join(work, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(work, "opt")}"`,
      "[proxy_plugins.stargz]",
      '  type = "snapshot"',
      `  address = "${stargzSocket}"`,
    ].join("\n"),
  );
  children.push(spawn("containerd", ["--config", config], { stdio: "ignore" }));
  const hostsDir = join(work, "certs.d");
  await mkdir(join(hostsDir, host), { recursive: true });
  await writeFile(join(hostsDir, host, "hosts.toml"), `server = "http://${host}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`);
  const tool = (command: string) => async (...args: string[]) => (await run(command, ["--address", socket, "--namespace", NAMESPACE, ...args], { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
  const ctr = tool("ctr");
  const node: LazyNode = {
    ctr,
    ctrRemote: tool("ctr-remote"),
    hostsDir,
    runContainer: (image, command, snapshotter = "stargz") =>
      ctr("run", "--rm", "--snapshotter", snapshotter, "--fifo-dir", join(work, "fifo"), "--runc-root", join(work, "runc"), image, `c${randomBytes(4).toString("hex")}`, ...command),
    stop: async () => {
      // The images go first and synchronously: their snapshots, and the FUSE mounts under them, with them.
      const images = await ctr("images", "ls", "-q").catch(() => "");
      const names = images.split("\n").filter(Boolean);
      if (names.length) await ctr("images", "rm", "--sync", ...names).catch(() => undefined);
      for (const child of [...children].reverse()) await stopped(child);
      const mounts = (await readFile("/proc/mounts", "utf8")).split("\n").map((line) => line.split(" ")[1] ?? "").filter((m) => m.startsWith(work));
      for (const mount of mounts.sort().reverse()) await run("umount", ["-l", mount]).catch(() => undefined);
      await rm(work, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(stargzSocket, "the stargz snapshotter's socket");
    await waitFor(socket, "containerd's socket");
    const plugins = await ctr("plugins", "ls");
    if (!/snapshotter\.v1\s+stargz\s+.*\sok/.test(plugins)) throw new Error(`containerd has no working stargz snapshotter:\n${plugins}`);
  } catch (err) {
    await node.stop();
    throw err;
  }
  return node;
}

/** An image with a small file and a large one, pushed to `host` (plain HTTP) twice: as eStargz, and as gzip. */
export interface LazyImage {
  estargz: string;
  gzip: string;
  /** The eStargz image's layer holding the large file. */
  layer: { digest: string; size: number };
  /** The small file's path and content. */
  small: { path: string; content: string };
}

/**
 * Builds the image offline (umoci, the machine's static busybox, `largeMiB` of random data) on
 * `node`, converts it to eStargz with ctr-remote, pushes both forms to `host`, and leaves the
 * node's content store empty again.
 */
export async function pushLazyImage(node: LazyNode, work: string, host: string, repository: string, largeMiB: number): Promise<LazyImage> {
  await mkdir(work, { recursive: true });
  const layout = join(work, "oci");
  const bundle = join(work, "bundle");
  const umoci = (...args: string[]) => run("umoci", args, { cwd: work, timeout: 120_000 });
  await umoci("init", "--layout", layout);
  await umoci("new", "--image", `${layout}:src`);
  await umoci("unpack", "--image", `${layout}:src`, bundle);
  const rootfs = join(bundle, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await mkdir(join(rootfs, "data"), { recursive: true });
  await copyFile("/bin/busybox", join(rootfs, "bin", "busybox"));
  const small = { path: "/hello.txt", content: `hello from a lazy pull ${randomBytes(4).toString("hex")}\n` };
  await writeFile(join(rootfs, small.path), small.content);
  await run("sh", ["-c", `head -c ${largeMiB * 1024 * 1024} /dev/urandom > ${join(rootfs, "data", "large.bin")}`]);
  await umoci("repack", "--image", `${layout}:src`, bundle);
  await umoci("config", "--image", `${layout}:src`, "--config.entrypoint", "/bin/busybox");
  const tar = join(work, "src.tar");
  await run("tar", ["-cf", tar, "-C", layout, "."]);
  const base = `${host}/${repository}`;
  await node.ctr("images", "import", "--base-name", base, tar);
  const gzip = `${base}:src`;
  const estargz = `${base}:esgz`;
  await node.ctrRemote("images", "convert", "--estargz", "--oci", gzip, estargz);
  await node.ctr("images", "push", "--plain-http", estargz);
  await node.ctr("images", "push", "--plain-http", gzip);
  const manifestDigest = (await node.ctr("images", "ls")).split("\n").find((line) => line.startsWith(`${estargz} `))?.split(/\s+/)[2];
  if (!manifestDigest) throw new Error(`${estargz} is not in the node's image list`);
  const manifest = JSON.parse(await node.ctr("content", "get", manifestDigest)) as { layers: Array<{ digest: string; size: number }> };
  const layer = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  await node.ctr("images", "rm", "--sync", gzip, estargz);
  await rm(work, { recursive: true, force: true });
  return { estargz, gzip, layer, small };
}
