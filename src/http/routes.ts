import { apiBase, health } from "./handlers/base.js";
import { deleteBlob, getBlob } from "./handlers/blobs.js";
import { listCatalog, listReferrers, listTags } from "./handlers/lists.js";
import { deleteManifest, getManifest, putManifest } from "./handlers/manifests.js";
import { cancelUpload, completeUpload, getUploadStatus, patchUpload, startUpload } from "./handlers/uploads.js";
import type { Access } from "../auth/access.js";
import type { AccessRule, Method, Route } from "./router.js";

const none = (): Access[] => [];

/** Actions on the route's repository, by method. */
function repository(actions: Partial<Record<Method, string[]>>): AccessRule {
  return (method, params) => [{ type: "repository", name: params.name ?? "", actions: actions[method] ?? [] }];
}

/** Uploads need pull and push; a cross-repository mount also needs pull on the source. */
const uploadAccess: AccessRule = (method, params, url) => {
  const own = repository({ [method]: ["pull", "push"] })(method, params, url);
  const from = url.searchParams.get("from");
  return method === "POST" && url.searchParams.has("mount") && from ? [...own, { type: "repository", name: from, actions: ["pull"] }] : own;
};

/**
 * The Docker Registry HTTP API v2 / OCI distribution-spec endpoints. Names may contain "/",
 * so each pattern anchors on what follows the name; the router checks every grammar.
 */
export const ROUTES: readonly Route[] = [
  // For load balancers and operators: never authenticated, never touches a blob.
  { name: "health", pattern: /^\/health$/, methods: { GET: health, HEAD: health }, access: "public" },
  // Authentication without a scope: how clients discover the realm.
  { name: "base", pattern: /^\/v2\/?$/, methods: { GET: apiBase, HEAD: apiBase }, access: none },
  { name: "catalog", pattern: /^\/v2\/_catalog$/, methods: { GET: listCatalog }, access: () => [{ type: "registry", name: "catalog", actions: ["*"] }] },
  { name: "tags", pattern: /^\/v2\/(?<name>.+)\/tags\/list$/, methods: { GET: listTags }, access: repository({ GET: ["pull"] }) },
  {
    name: "manifest",
    pattern: /^\/v2\/(?<name>.+)\/manifests\/(?<reference>[^/]+)$/,
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
    access: repository({ GET: ["pull"], HEAD: ["pull"], PUT: ["pull", "push"], DELETE: ["delete"] }),
  },
  { name: "blob_upload", pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload }, access: uploadAccess },
  {
    name: "blob_upload_chunk",
    pattern: /^\/v2\/(?<name>.+)\/blobs\/uploads\/(?<upload>[^/]+)$/,
    methods: { GET: getUploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
    access: uploadAccess,
  },
  {
    name: "blob",
    pattern: /^\/v2\/(?<name>.+)\/blobs\/(?<digest>[^/]+)$/,
    methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
    access: repository({ GET: ["pull"], HEAD: ["pull"], DELETE: ["delete"] }),
  },
  { name: "referrers", pattern: /^\/v2\/(?<name>.+)\/referrers\/(?<digest>[^/]+)$/, methods: { GET: listReferrers }, access: repository({ GET: ["pull"] }) },
];
