import { createHash } from "node:crypto";

/** How one client's GET ended: all the right bytes, a spec error status, or a transfer cut short. */
export interface Outcome {
  status: number;
  /** Bytes received, and what Content-Length promised. */
  length: number;
  declared: number;
  digest: string;
  code?: string;
  broken: boolean;
}

/** GETs a blob, hashing what arrives; `leaveAfter`: the client goes away after that many bytes. */
export async function download(url: string, leaveAfter?: number, headers: Record<string, string> = {}): Promise<Outcome> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal, headers });
  const declared = Number(res.headers.get("content-length"));
  if (res.status !== 200) {
    const text = await res.text();
    const code = (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code;
    return { status: res.status, length: 0, declared, digest: "", broken: false, ...(code ? { code } : {}) };
  }
  const hash = createHash("sha256");
  let length = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      length += chunk.length;
      if (leaveAfter !== undefined && length >= leaveAfter) {
        abort.abort();
        break;
      }
    }
  } catch {
    // A transfer cut short: what arrived is counted below.
  }
  return { status: 200, length, declared, digest: length === declared ? `sha256:${hash.digest("hex")}` : "", broken: length < declared };
}
