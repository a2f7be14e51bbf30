import { apiBase } from "./handlers/base.js";
import { deleteBlob, getBlob } from "./handlers/blobs.js";
import { listCatalog, listReferrers, listTags } from "./handlers/lists.js";
import { deleteManifest, getManifest, putManifest } from "./handlers/manifests.js";
import { cancelUpload, completeUpload, getUploadStatus, patchUpload, startUpload } from "./handlers/uploads.js";
import type { Route } from "./router.js";

/**
 * The Docker Registry HTTP API v2 / OCI distribution-spec endpoints. Names may contain "/",
 * so each pattern anchors on what follows the name; the router checks every grammar.
 */
export const ROUTES: readonly Route[] = [
  { pattern: /^\/v2\/?$/, methods: { GET: apiBase, HEAD: apiBase } },
  { pattern: /^\/v2\/_catalog$/, methods: { GET: listCatalog } },
  { pattern: /^\/v2\/(?<name>.+)\/tags\/list$/, methods: { GET: listTags } },
  {
    pattern: /^\/v2\/(?<name>.+)\/manifests\/(?<reference>[^/]+)$/,
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  { pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload } },
  {
    pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads\/(?<upload>[^/]+)$/,
    methods: { GET: getUploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
  },
  { pattern: /^\/v2\/(?<name>.+)\/blobs\/(?<digest>[^/]+)$/, methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
  { pattern: /^\/v2\/(?<name>.+)\/referrers\/(?<digest>[^/]+)$/, methods: { GET: listReferrers } },
];
