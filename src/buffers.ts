/**
 * A copy of `buffer` that holds its own bytes and no more. A small Buffer (under half of
 * Buffer.poolSize, which is 64 KiB on Node 24) is a slice of a shared slab: one kept in a cache
 * keeps its whole slab resident. A cache of a few thousand small entries (links, manifests) held
 * a slab of 64 KiB each: the registry's resident set grew without bound under pushes.
 */
export function unpooled(buffer: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(buffer.length);
  buffer.copy(copy);
  return copy;
}
