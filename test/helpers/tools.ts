import { execFileSync } from "node:child_process";

/**
 * Whether an external binary (skopeo, docker-registry, ...) is installed. Integration suites
 * skip without it on a developer box; with REQUIRE_INTEGRATION=1 (CI) a missing tool fails.
 */
export function hasTool(name: string): boolean {
  const found = installed(name);
  if (!found && process.env.REQUIRE_INTEGRATION === "1") {
    throw new Error(`${name} is required (REQUIRE_INTEGRATION=1) but not installed`);
  }
  return found;
}

/** Whether a binary is on PATH (or, given a path, there). */
export function installed(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * The binaries the integration suites ask for (hasTool, RGW_TOOLS), and the Debian package of
 * each (test/system-packages.txt lists them all, for .ci/run).
 */
export const SYSTEM_TOOLS: Readonly<Record<string, string>> = {
  skopeo: "skopeo",
  "docker-registry": "docker-registry",
  etcd: "etcd-server",
  openssl: "openssl",
  containerd: "containerd",
  ctr: "containerd",
  nginx: "nginx-light",
  curl: "curl",
  podman: "podman",
  "systemd-analyze": "systemd",
  setpriv: "util-linux",
  ip: "iproute2",
  iptables: "iptables",
  "/usr/bin/chromium": "chromium",
  "ceph-mon": "ceph-mon",
  "ceph-osd": "ceph-osd",
  radosgw: "radosgw",
  "radosgw-admin": "radosgw",
  monmaptool: "ceph-base",
  ceph: "ceph-common",
  // A lazy-pulling node (test/helpers/stargz.ts); the snapshotter is built from golang-github-containerd-stargz-snapshotter-dev.
  go: "golang-go",
  "ctr-remote": "stargz-snapshotter",
  runc: "runc",
  umoci: "umoci",
  busybox: "busybox-static",
};
