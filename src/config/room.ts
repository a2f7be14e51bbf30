/** A free-space threshold: a share of the volume ("10%"), or bytes ("5GiB", "500MB", 1048576). */
export type Room = { ratio: number } | { bytes: number };

const UNITS: Record<string, number> = {
  "": 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** Undefined when the value is neither a percentage from 0 to 100 nor a size. */
export function parseRoom(value: string | number): Room | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? { bytes: value } : undefined;
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(value.trim());
  if (percent) {
    const ratio = Number(percent[1]) / 100;
    return ratio <= 1 ? { ratio } : undefined;
  }
  const size = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  if (!size) return undefined;
  const unit = UNITS[(size[2] ?? "").toLowerCase()];
  return unit === undefined ? undefined : { bytes: Math.round(Number(size[1]) * unit) };
}

/** The bytes a threshold asks to keep free on a volume of `total` bytes. */
export function roomBytes(room: Room, total: number): number {
  return "ratio" in room ? Math.round(room.ratio * total) : room.bytes;
}
