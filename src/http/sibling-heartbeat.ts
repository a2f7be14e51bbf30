import type { ServerResponse } from "node:http";

/** How an owner shows a sibling mirror waiting for its answer that it is alive. */
export interface SiblingHeartbeat {
  /** A `102 Processing` this often until the answer's headers go out. */
  everyMs: number;
  /** For at most this long; then the sibling's own first-byte timeout passes this owner over. */
  forMs: number;
}

/**
 * The asking mirror's first-byte timeout (proxy.siblings.firstbytetimeout) tells an owner that
 * is gone (stopped, wedged) from one that is alive. An owner that has to ask the primary first
 * can take longer than that on a busy link or machine; its interim responses restart the asker's
 * timer (the peer client restarts its headers timeout on each 1xx), so it is not passed over, and the
 * blob does not cross the link twice. Nothing is sent once the final headers are stored: a 102
 * written after them would land in the body.
 */
export function keepSiblingWaiting(res: ServerResponse, heartbeat: SiblingHeartbeat): void {
  const until = Date.now() + heartbeat.forMs;
  const beat = () => {
    if (res.headersSent || res.writableEnded || res.destroyed || Date.now() > until) {
      clearInterval(timer);
      return;
    }
    res.writeProcessing();
  };
  const timer = setInterval(beat, heartbeat.everyMs);
  res.once("close", () => clearInterval(timer));
  beat();
}
