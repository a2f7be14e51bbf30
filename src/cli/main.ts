#!/usr/bin/env -S node --max-semi-space-size=8 --min-semi-space-size=8
// The young generation's semi-spaces stay at 8 MiB: V8 24 grows them up to 32 MiB under load, and
// a streaming server gains nothing from that but resident memory (docs/memory.md). Every launcher
// (npm start, the Dockerfile, the tests' server processes) starts node with this line's flags.
//
// On a Node older than the project supports its commands fail in ways that read as bugs (the AWS
// SDK and etcd's client need Node 22): that Node is refused before any of them is loaded, as the
// launchers refuse it (launcher/engines.js).
import { isSupported, refusal } from "../../launcher/engines.js";

if (!isSupported(process.version)) {
  process.stderr.write(`${refusal()}\n`);
  process.exit(2);
}
await import("./commands.js");
