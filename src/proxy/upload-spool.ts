import type { BlobSink } from "../registry/uploads.js";
import type { SpoolFile } from "./spool.js";

/**
 * A fill's spool that is the store's upload itself, where the store keeps local files: each byte
 * the mirror fetches is written once, and keeping the verified blob is a rename, not a copy.
 * Undefined for stores that cannot read an upload back while it is written.
 */
export async function uploadSpoolFile(sink: BlobSink): Promise<SpoolFile | undefined> {
  if (!sink.readBack) return undefined;
  const back = await sink.readBack();
  const { stream } = sink;
  // Each write's callback carries its error to the spool, which fails the fill; the event
  // would otherwise be unhandled.
  stream.on("error", () => undefined);
  return {
    // The spool writes in order, each batch where the last ended: appending is writing there.
    writev: (buffers) =>
      new Promise((resolve, reject) => {
        const last = buffers.length - 1;
        stream.cork();
        buffers.forEach((buffer, i) =>
          stream.write(buffer, i < last ? undefined : (err) => {
            if (err) return reject(err);
            resolve({ bytesWritten: buffers.reduce((sum, b) => sum + b.length, 0) });
          }),
        );
        stream.uncork();
      }),
    read: (buffer, offset, length, position) => back.read(buffer, offset, length, position),
    close: () => back.close(),
  };
}
