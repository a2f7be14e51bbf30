export interface ListenAddress {
  /** undefined: every interface */
  host: string | undefined;
  port: number;
}

/** "host:port", "[v6]:port" or ":port" (every interface), as distribution reads http.addr; undefined when it is none of them. */
export function parseListenAddress(addr: string): ListenAddress | undefined {
  const colon = addr.lastIndexOf(":");
  if (colon < 0) return undefined;
  const host = addr.slice(0, colon).replace(/^\[|\]$/g, "");
  const text = addr.slice(colon + 1);
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535 || host.includes(" ")) return undefined;
  return { host: host === "" ? undefined : host, port };
}

/** The address of a configuration that validation accepted. */
export function listenAddress(addr: string): ListenAddress {
  const parsed = parseListenAddress(addr);
  if (!parsed) throw new Error(`listen address ${JSON.stringify(addr)} is not host:port`);
  return parsed;
}
