const UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go's time.ParseDuration ("1h30m", "300ms", "2.5s"), as distribution's config uses, in
 * milliseconds. A bare number is taken as seconds. Returns undefined for anything else.
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const text = value.trim();
  if (text === "0") return 0;
  const pattern = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    total += Number(match[1]) * (UNITS_MS[match[2] ?? ""] ?? 0);
    consumed = pattern.lastIndex;
  }
  return consumed === text.length && consumed > 0 ? total : undefined;
}
