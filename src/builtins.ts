import { createRequire } from "node:module";

/**
 * node:http and node:https, taken as CommonJS modules. Imported as ES modules their namespace is
 * built from every export, and node:http's lazy ones (WebSocket, CloseEvent, MessageEvent) then
 * load Node's own copy of undici: 14 MiB of resident memory for nothing (Node 24, measured).
 * node:https (with node:tls) costs 5 MiB more, so it loads only where TLS is spoken.
 */
const require = createRequire(import.meta.url);

export const http: typeof import("node:http") = require("node:http");

export function https(): typeof import("node:https") {
  return require("node:https") as typeof import("node:https");
}
