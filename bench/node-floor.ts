/**
 * The floor of a monolithic push in Node on this machine, for `npm run bench`: a bare node:http
 * server that does only what an acknowledged push must, with lain's own parts (the body piped
 * through HashingStream into the filesystem driver's writer, then its fsync and a digest check),
 * and nothing the registry adds above them (routing, auth, upload sessions, links, the access
 * log). lain's push against it is what the registry costs; its own figures against
 * distribution's are what Node and this writer allow here.
 *
 *   node bench/node-floor.ts PORT ROOT      (after `npm run build`)
 *
 * It speaks just enough of the API for the bench's pushBlob: POST answers 202 with a Location,
 * PUT to it with ?digest= stores, checks and answers 201, then deletes what it stored.
 */
import { createServer, type IncomingMessage } from "node:http";
import { pipeline } from "node:stream/promises";

// The build's JavaScript, run by node itself (it strips this file's types): under tsx's loader the
// same compiled code pushed at half the speed, with twice the system time (measured 2026-12-05).
const dist = new URL("../dist/", import.meta.url);
const load = (module: string): Promise<unknown> => import(new URL(module, dist).href);
const { hashToDigest, newHash, HashingStream } = (await load("registry/digest.js")) as typeof import("../src/registry/digest.js");
const { FilesystemDriver } = (await load("storage/filesystem.js")) as typeof import("../src/storage/filesystem.js");

const [port, root] = process.argv.slice(2);
if (!port || !root) throw new Error("usage: node bench/node-floor.ts PORT ROOT");
const driver = new FilesystemDriver(root);
let sessions = 0;

async function store(req: IncomingMessage, path: string, expected: string | null): Promise<number> {
  const writer = await driver.writer(path, false);
  const hash = newHash("sha256");
  try {
    await pipeline(req, new HashingStream(hash), writer.stream);
    await writer.commit();
  } catch (err) {
    await writer.cancel();
    throw err;
  }
  return hashToDigest("sha256", hash) === expected ? 201 : 400;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://floor");
  if (req.method === "POST") {
    res.writeHead(202, { location: `/upload/${sessions++}` }).end();
  } else if (req.method === "PUT") {
    const path = url.pathname;
    store(req, path, url.searchParams.get("digest"))
      .then((status) => res.writeHead(status).end())
      .catch((err: unknown) => res.writeHead(500).end(String(err)))
      .finally(() => driver.delete(path).catch(() => undefined));
  } else {
    // GET /v2/: the launcher's readiness poll.
    res.writeHead(200).end();
  }
});
server.listen(Number(port), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
