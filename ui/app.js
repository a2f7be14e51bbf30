// lain-registry's web console: a page of plain modules, no build step and nothing from another
// origin. It reads the registry API (/v2/...) and the console API (api/...), both with the
// credentials the user gives, so it shows only what those credentials may pull.

const BASE = new URL(".", location.href).pathname; // the console's path, e.g. /ui/
const API = `${BASE}api`;
const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const PAGE = 50;

const view = document.getElementById("view");
const session = { info: undefined, user: undefined, password: undefined, tokens: new Map() };
let repositories; // the repository list as it loads: a promise of { names, complete }, once per visit
let poll; // the refresh timer of the current view

// ---- rendering helpers ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) if (child !== undefined && child !== null) el.append(child instanceof Node ? child : String(child));
  return el;
}

function show(...nodes) {
  view.replaceChildren(...nodes.flat(2).filter((n) => n !== undefined && n !== null));
}

function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const short = (digest) => digest.replace(/^(sha256:)?(.{12}).*$/, "$1$2…");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const repoLink = (name) => h("a", { href: `#/r/${name}` }, name);
const manifestLink = (name, digest, text = short(digest)) => h("a", { href: `#/m/${name}/${digest}`, class: "mono", title: digest }, text);

/** A pull command with a copy button; the text stays selectable where the clipboard is refused. */
function pullCommand(reference) {
  const input = h("input", { type: "text", readonly: true, value: `docker pull ${reference}`, "data-testid": "pull-command" });
  const button = h("button", {
    type: "button",
    "data-testid": "copy",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        input.select();
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    },
  }, "Copy");
  return h("div", { class: "pull" }, input, button);
}

function failure(err) {
  show(h("h1", {}, "Something went wrong"), h("p", { class: "bad", "data-testid": "error" }, err.message));
}

// ---- talking to the registry ----

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The bearer token for a scope, from the console's token endpoint (token auth only). */
async function tokenFor(scope) {
  const cached = session.tokens.get(scope);
  if (cached && cached.until > Date.now()) return cached.token;
  const res = await fetch(`${API}/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: session.user, password: session.password, scope }),
  });
  const body = await res.json();
  if (!res.ok) throw new HttpError(res.status, body.errors?.[0]?.message ?? `login failed (${res.status})`);
  session.tokens.set(scope, { token: body.token, until: Date.now() + (body.expiresIn - 5) * 1000 });
  return body.token;
}

async function authorization(scope) {
  if (session.info.auth === "htpasswd") return `Basic ${btoa(`${session.user}:${session.password}`)}`;
  if (session.info.auth === "token") return `Bearer ${await tokenFor(scope)}`;
  return undefined;
}

/** GET (or POST) with the credentials the scope needs; the body as JSON, or the error the registry gave. */
async function call(path, scope, { method = "GET", accept = "application/json" } = {}) {
  // Tells the registry to answer a refusal without a challenge: the console asks for credentials itself.
  const headers = { accept, "x-lain-console": "1" };
  const auth = await authorization(scope);
  if (auth) headers.authorization = auth;
  const res = await fetch(path, { method, headers });
  const text = await res.text();
  const body = text ? JSON.parse(text) : {};
  if (!res.ok) throw new HttpError(res.status, body.errors?.[0]?.message ?? `${res.status} ${res.statusText}`);
  return { body, headers: res.headers };
}

const catalogScope = "registry:catalog:*";
const pullScope = (name) => `repository:${name}:pull`;

// ---- views ----

async function loginView(message) {
  const user = h("input", { type: "text", name: "username", placeholder: "user", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", placeholder: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "bad", "data-testid": "login-error" }, message ?? "");
  const form = h("form", {
    class: "login",
    onsubmit: async (event) => {
      event.preventDefault();
      session.user = user.value;
      session.password = password.value;
      session.tokens.clear();
      try {
        // Any request proves the credentials: the base endpoint needs no scope.
        await call("/v2/", "");
        document.getElementById("who").textContent = session.user;
        route();
      } catch (err) {
        session.user = session.password = undefined;
        error.textContent = err.status === 401 ? "Those credentials were refused." : err.message;
      }
    },
  }, h("h1", {}, "Sign in"), h("span", { class: "muted" }, `This registry uses ${session.info.auth} authentication.`), user, password, h("button", { class: "primary", type: "submit" }, "Sign in"), error);
  show(form);
  user.focus();
}

/**
 * The repository list, in pages: the first small one shows at once, the rest arrive behind it
 * and the view redraws as they do (a store of thousands answers the first page in milliseconds).
 */
function loadRepositories() {
  const state = { names: [], complete: false };
  const page = async (n, last) => (await call(`${API}/repositories?${new URLSearchParams({ n: String(n), ...(last ? { last } : {}) })}`, catalogScope)).body;
  const first = page(100).then(async (body) => {
    state.names.push(...body.repositories);
    state.complete = !body.more;
    return state;
  });
  first.then(async () => {
    while (!state.complete) {
      const body = await page(5000, state.names.at(-1));
      state.names.push(...body.repositories);
      state.complete = !body.more;
      if (location.hash === "" || location.hash.startsWith("#/?") || location.hash === "#/") await renderRepositories(new URLSearchParams(location.hash.split("?")[1] ?? ""));
    }
    // The first page's failure is the view's to show (open by name); later pages' are errors.
  }, () => undefined).catch(failure);
  return first;
}

async function repositoriesView(query) {
  try {
    repositories ??= loadRepositories();
    await repositories;
  } catch (err) {
    repositories = undefined;
    if (err.status !== 401 && err.status !== 403) throw err;
    // Without the catalog scope, a repository can still be opened by name.
    const input = h("input", { type: "search", placeholder: "repository name", "data-testid": "open-name" });
    show(h("h1", {}, "Repositories"), h("p", { class: "muted" }, "These credentials may not list the catalog; open a repository by name."),
      h("form", { onsubmit: (e) => { e.preventDefault(); location.hash = `#/r/${input.value.trim()}`; } }, input, " ", h("button", { type: "submit" }, "Open")));
    return;
  }
  renderRepositories(query);
}

async function renderRepositories(query) {
  const { names, complete } = await repositories;
  const total = complete ? String(names.length) : `${names.length}+ (loading)`;
  const search = h("input", { type: "search", placeholder: `Search ${total} repositories`, value: query.get("q") ?? "", "data-testid": "search" });
  const page = Number(query.get("page") ?? 0);
  const needle = search.value.toLowerCase();
  const matching = needle ? names.filter((n) => n.toLowerCase().includes(needle)) : names;
  const shown = matching.slice(page * PAGE, (page + 1) * PAGE);
  const go = (q, p) => (location.hash = `#/?${new URLSearchParams({ ...(q ? { q } : {}), ...(p ? { page: String(p) } : {}) })}`);
  search.addEventListener("input", () => {
    clearTimeout(search.timer);
    search.timer = setTimeout(() => go(search.value, 0), 150);
  });
  show(
    h("h1", {}, "Repositories"),
    h("div", { class: "toolbar" }, search,
      h("span", { class: "muted", "data-testid": "count" }, `${matching.length} of ${total}`),
      h("button", { disabled: page === 0, onclick: () => go(search.value, page - 1) }, "‹ Previous"),
      h("button", { disabled: (page + 1) * PAGE >= matching.length, onclick: () => go(search.value, page + 1) }, "Next ›")),
    h("table", { "data-testid": "repositories" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"))),
      h("tbody", {}, shown.map((name) => h("tr", {}, h("td", {}, repoLink(name)))))),
  );
  search.focus();
  search.setSelectionRange(search.value.length, search.value.length);
  // When the first page of names, and then the whole list, was on screen: the test of a large catalog reads them.
  document.body.dataset.rendered ??= String(Math.round(performance.now()));
  if (complete) document.body.dataset.complete ??= String(Math.round(performance.now()));
}

async function repositoryView(name) {
  const { body } = await call(`${API}/tags/${name}?n=1000`, pullScope(name));
  const host = location.host;
  if (body.tags.length === 0) {
    return show(h("h1", {}, name), h("p", { class: "muted", "data-testid": "no-tags" },
      "This repository has no tags: it holds blobs pushed or mounted without a manifest, or only untagged manifests (a pull by digest still works)."));
  }
  show(
    h("h1", {}, name),
    h("table", { "data-testid": "tags" },
      h("thead", {}, h("tr", {}, ["Tag", "Digest", "Media type", "Platforms", "Size", "Pushed", "Pull"].map((t) => h("th", { class: t === "Size" ? "num" : undefined }, t)))),
      h("tbody", {}, body.tags.map((t) => h("tr", { "data-tag": t.tag },
        h("td", {}, h("a", { href: `#/m/${name}/${t.digest}` }, t.tag)),
        h("td", { class: "nowrap" }, manifestLink(name, t.digest)),
        h("td", { class: "mono" }, t.mediaType),
        h("td", {}, t.platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`).join(", ")),
        h("td", { class: "num" }, bytes(t.size)),
        h("td", { class: "nowrap" }, when(t.pushed)),
        h("td", {}, pullCommand(`${host}/${name}:${t.tag}`)),
      )))),
    body.more ? h("p", { class: "muted" }, "Only the first 1000 tags are shown.") : undefined,
    await retentionPart(name),
  );
}

/** A rule of storage.retention as it reads in the configuration. */
function ruleText(r) {
  const keep = r.keep ? [
    r.keep.always.length ? `always ${r.keep.always.join(", ")}` : "",
    r.keep.tags !== undefined ? `tags ${r.keep.tags}` : "",
    r.keep.newestPushed !== undefined ? `the newest ${r.keep.newestPushed} pushed` : "",
    r.keep.newestPulled !== undefined ? `the newest ${r.keep.newestPulled} pulled` : "",
    r.keep.pushedWithinMs !== undefined ? `pushed within ${r.keep.pushedWithinMs / 1000} s` : "",
    r.keep.pulledWithinMs !== undefined ? `pulled within ${r.keep.pulledWithinMs / 1000} s` : "",
  ].filter(Boolean).join("; ") : "";
  const rest = [r.untaggedOlderThanMs !== undefined ? `untagged manifests older than ${r.untaggedOlderThanMs / 1000} s go` : "", r.orphanReferrers ? "referrers of nothing go" : ""].filter(Boolean);
  return `rule ${r.index + 1} (${r.repositories}): ${[keep ? `keeps ${keep}` : "says nothing of tags", ...rest].join("; ")}`;
}

/** The repository's retention policy, and what a run now would keep and remove (a dry run). */
async function retentionPart(name) {
  const { body } = await call(`${API}/retention/${name}`, pullScope(name));
  const title = h("h2", {}, "Retention (storage.retention)");
  if (body.rules.length === 0) return [title, h("p", { class: "muted", "data-testid": "retention-policy" }, "No rule governs this repository: everything is kept.")];
  const { plan } = body;
  return [
    title,
    h("ul", { "data-testid": "retention-policy" }, body.rules.map((r) => h("li", {}, ruleText(r)))),
    h("p", {}, "A run now (dry run):"),
    h("table", { "data-testid": "retention-plan" }, h("thead", {}, h("tr", {}, ["Tag or manifest", "Verdict", "Why"].map((t) => h("th", {}, t)))),
      h("tbody", {},
        plan.tags.map((t) => h("tr", {}, h("td", {}, t.tag), h("td", { class: t.kept ? "good" : "bad" }, t.kept ? "keep" : "remove"), h("td", {}, t.reason))),
        plan.manifests.map((m) => h("tr", {}, h("td", { class: "mono" }, short(m.digest)), h("td", { class: "bad" }, "remove"), h("td", {}, m.reason))))),
  ];
}

async function manifestView(name, digest) {
  const { body: manifest, headers } = await call(`/v2/${name}/manifests/${digest}`, pullScope(name), { accept: ACCEPT });
  let referrers = [];
  try {
    referrers = (await call(`/v2/${name}/referrers/${digest}`, pullScope(name))).body.manifests ?? [];
  } catch {
    // A registry without the referrers API answers 404: there are none to show.
  }
  const mediaType = manifest.mediaType ?? headers.get("content-type");
  const descriptorRows = (items, link) => items.map((d) => h("tr", {},
    h("td", {}, link ? manifestLink(name, d.digest, d.digest) : h("span", { class: "mono" }, d.digest)),
    h("td", { class: "mono" }, d.mediaType ?? ""),
    h("td", {}, d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ""}` : d.artifactType ?? ""),
    h("td", { class: "num" }, bytes(d.size))));
  const table = (testid, rows) => h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, h("th", {}, "Digest"), h("th", {}, "Media type"), h("th", {}, "Platform / type"), h("th", { class: "num" }, "Size"))),
    h("tbody", {}, rows));
  show(
    h("h1", {}, h("a", { href: `#/r/${name}` }, name), " @ ", h("span", { class: "mono", "data-testid": "digest" }, digest)),
    h("p", {}, h("span", { class: "muted" }, "Media type: "), h("span", { class: "mono", "data-testid": "media-type" }, mediaType),
      manifest.artifactType ? [h("span", { class: "muted" }, "  Artifact type: "), h("span", { class: "mono" }, manifest.artifactType)] : undefined),
    pullCommand(`${location.host}/${name}@${digest}`),
    manifest.subject ? h("p", {}, h("span", { class: "muted" }, "Refers to "), manifestLink(name, manifest.subject.digest, manifest.subject.digest)) : undefined,
    manifest.manifests ? [h("h2", {}, "Manifests"), table("children", descriptorRows(manifest.manifests, true))] : undefined,
    manifest.config ? [h("h2", {}, "Config"), table("config", descriptorRows([manifest.config], false))] : undefined,
    manifest.layers ? [h("h2", {}, `Layers (${manifest.layers.length}, ${bytes(manifest.layers.reduce((s, l) => s + l.size, 0))})`), table("layers", descriptorRows(manifest.layers, false))] : undefined,
    h("h2", {}, `Referrers (${referrers.length})`),
    referrers.length ? table("referrers", descriptorRows(referrers, true)) : h("p", { class: "muted", "data-testid": "no-referrers" }, "No signatures, SBOMs or other artifacts refer to this manifest."),
  );
}

function card(label, value, testid) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", "data-testid": testid }, value));
}

/** storage.scrub: what its last run found in the store, and what it did about it. */
function scrubPart(s) {
  const title = h("h2", {}, "Scrub (storage.scrub)");
  if (!s.enabled) return [title, h("p", { class: "muted" }, "Off: lain-registry scrub checks the store on demand.")];
  const every = `every ${s.intervalMs >= 3_600_000 ? `${Math.round(s.intervalMs / 3_600_000)} h` : `${Math.round(s.intervalMs / 1000)} s`} at ${s.rateMiBps} MiB/s`;
  if (!s.last) return [title, h("p", { class: "muted", "data-testid": "scrub-summary" }, `On, ${every}; it has not run yet.`)];
  if (s.last.error) return [title, h("p", { class: "bad", "data-testid": "scrub-summary" }, `The last scrub (${when(s.last.at)}) failed: ${s.last.error}`)];
  const r = s.last.report;
  const where = (p) => p.where.map((w) => (w.tags.length ? w.tags.map((t) => `${w.repository}:${t}`).join(", ") : w.repository)).join(", ");
  return [
    title,
    h("p", { "data-testid": "scrub-summary" }, `On, ${every}. The last run (${when(s.last.at)}) checked ${r.blobs} blobs (${bytes(r.bytes)}) in ${r.repositories} repositories: `,
      h("span", { class: r.problemCount ? "bad" : "good" }, r.problemCount ? `${r.problemCount} problem(s)` : "nothing wrong"), "."),
    r.problems.length
      ? h("table", { "data-testid": "scrub-problems" }, h("thead", {}, h("tr", {}, ["Problem", "Blob", "Where", "Done"].map((t) => h("th", {}, t)))),
        h("tbody", {}, r.problems.map((p) => h("tr", {}, h("td", {}, p.kind), h("td", { class: "mono", title: p.detail }, short(p.digest)), h("td", {}, where(p)), h("td", {}, p.action ?? "–")))))
      : undefined,
  ];
}

async function storageView() {
  const render = async () => {
    const { body: state } = await call(`${API}/storage`, catalogScope);
    const start = h("button", {
      class: "primary",
      "data-testid": "analyze",
      disabled: state.state === "running",
      onclick: async () => {
        try {
          await call(`${API}/storage`, catalogScope, { method: "POST" });
          await render();
        } catch (err) {
          start.replaceWith(h("span", { class: "bad", "data-testid": "analyze-error" }, err.message));
        }
      },
    }, state.state === "idle" ? "Analyze storage (garbage-collect dry run)" : "Analyze again");
    const parts = [h("h1", {}, "Storage"), h("div", { class: "toolbar" }, start, h("span", { class: "muted", "data-testid": "analysis-state" }, state.state))];
    if (state.state === "running") {
      parts.push(h("div", { class: "toolbar" }, h("div", { class: "progress" }, h("div")),
        h("span", { "data-testid": "analysis-progress" }, `${state.phase}: ${Object.entries(state.counts).map(([k, v]) => `${k} ${v}`).join(", ")}`)));
      poll = setTimeout(() => render().catch(failure), 1000);
    } else if (state.state === "failed") {
      parts.push(h("p", { class: "bad" }, state.error));
    } else if (state.state === "done") {
      const { storage, gc } = state;
      parts.push(
        h("div", { class: "cards" },
          card("Stored (layers, configs, manifests)", bytes(storage.totalBytes), "total-bytes"),
          card("Blobs", storage.blobs, "blobs"),
          card("Repositories", storage.repositories, "repository-count"),
          card("garbage-collect would free", `${bytes(gc.bytes)} in ${gc.blobs} blobs`, "gc-would-free")),
        h("p", { class: "muted" }, `Analyzed ${when(state.finishedAt)}. Blobs younger than storage.gc.delay are not counted as garbage.`),
        h("h2", {}, "Largest repositories"),
        h("table", { "data-testid": "largest" }, h("thead", {}, h("tr", {}, h("th", {}, "Repository"), h("th", { class: "num" }, "Blobs"), h("th", { class: "num" }, "Size"))),
          h("tbody", {}, storage.largest.map((r) => h("tr", {}, h("td", {}, repoLink(r.name)), h("td", { class: "num" }, r.blobs), h("td", { class: "num" }, bytes(r.bytes)))))),
      );
    }
    parts.push(scrubPart(state.scrub));
    if (location.hash.startsWith("#/storage")) show(...parts);
  };
  await render();
}

async function mirrorView() {
  const { body } = await call(`${API}/overview`, catalogScope);
  const m = body.mirror;
  if (!m) return show(h("h1", {}, "Mirror"), h("p", { class: "muted" }, "This registry has no proxy section: it mirrors nothing."));
  const lookups = m.blobs.hits + m.blobs.misses + m.blobs.coalesced;
  const served = m.bytes.cache + m.bytes.upstream + m.bytes.sibling;
  show(
    h("h1", {}, "Mirror"),
    h("p", {}, "Pulls through from ", h("span", { class: "mono", "data-testid": "upstream" }, m.upstream), ": ",
      h("span", { class: m.health.ok ? "good" : "bad", "data-testid": "upstream-health" }, m.health.ok ? "reachable" : m.health.message)),
    h("div", { class: "cards" },
      card("Blob hit ratio", lookups ? `${((m.blobs.hits / lookups) * 100).toFixed(1)} %` : "–", "hit-ratio"),
      card("Blob hits / misses / joined", `${m.blobs.hits} / ${m.blobs.misses} / ${m.blobs.coalesced}`, "blob-lookups"),
      card("Served from cache", bytes(m.bytes.cache), "bytes-cache"),
      card("Fetched from upstream", bytes(m.bytes.upstream), "bytes-upstream"),
      card("Fetched from siblings", bytes(m.bytes.sibling), "bytes-sibling"),
      card("Share from cache", served ? `${((m.bytes.cache / served) * 100).toFixed(1)} %` : "–", "cache-share"),
      card("Fetches in flight", m.fetchesInFlight, "in-flight"),
      card("Upstream errors", m.upstreamErrors, "upstream-errors")),
    h("h2", {}, "Sibling mirrors (proxy.siblings)"),
    m.siblings
      ? [
        h("ul", { "data-testid": "siblings" }, m.siblings.mirrors.map((a) => h("li", { class: "mono" }, a, a === m.siblings.self ? " (this one)" : ""))),
        h("p", {}, "This mirror receives at ", h("span", { "data-testid": "link-rate" }, m.siblings.linkRate ? `${bytes(m.siblings.linkRate)}/s` : "a rate not learnt yet"),
          " (the best of its latest fills; a mirror much slower than an asker is never its parent)."),
        h("h2", {}, "Relays of the last two minutes"),
        m.siblings.relays.length
          ? h("table", { "data-testid": "relays" }, h("thead", {}, h("tr", {}, ["Blob", "Streams served now", "Sibling", "Got it from", "Its rate"].map((t) => h("th", {}, t)))),
            h("tbody", {}, m.siblings.relays.flatMap((r) => r.receivers.map((x, i) => h("tr", {},
              h("td", { class: "mono" }, i === 0 ? r.blob.replace(/@sha256:(.{12}).*/, "@$1…") : ""), h("td", {}, i === 0 ? String(r.serving) : ""),
              h("td", { class: "mono" }, x.address), h("td", { class: "mono" }, x.source === "here" ? "this mirror" : x.source),
              h("td", {}, x.rate ? `${bytes(x.rate)}/s` : "–"))))))
          : h("p", { class: "muted" }, "No sibling has asked this mirror for a blob lately."),
      ]
      : h("p", { class: "muted" }, "Off: every blob this mirror lacks comes from upstream."),
    h("h2", {}, "Write-back (proxy.pushes)"),
    m.writeback ? writebackPart(m.writeback) : h("p", { class: "muted" }, "Off: pushes to what this mirror mirrors are refused (push to the upstream)."),
    h("h2", {}, "Prefetch (proxy.prefetch)"),
    m.prefetch.length
      ? h("table", { "data-testid": "prefetch" }, h("thead", {}, h("tr", {}, h("th", {}, "Reference"), h("th", {}, "State"), h("th", {}, "Checked"))),
        h("tbody", {}, m.prefetch.map((p) => h("tr", {}, h("td", { class: "mono" }, p.reference),
          h("td", { class: p.error ? "bad" : "" }, p.error ?? (p.digest ? `cached ${short(p.digest)}` : "waiting")), h("td", {}, when(p.checked))))))
      : h("p", { class: "muted" }, "Nothing is prefetched."),
  );
  poll = setTimeout(() => location.hash.startsWith("#/mirror") && mirrorView().catch(failure), 5000);
}

/** One journaled write as a line: what it did to which tag or digest. */
function writeText(e) {
  if (e.kind === "delete") return `delete ${e.name}@${short(e.digest)}`;
  if (e.kind === "untag") return `untag ${e.name}:${e.tag}`;
  return `push ${e.name}${e.tag ? `:${e.tag}` : ""} ${short(e.digest)}`;
}

/** A standby's journal: what it took while the upstream was down, waiting to be replayed, and what the replay decided against. */
function writebackPart(w) {
  const last = w.lastReplay;
  return [
    h("div", { class: "cards" },
      card("Writes waiting", w.pending, "writeback-pending"),
      card("Oldest waiting since", w.oldestAt ? when(w.oldestAt) : "–", "writeback-oldest"),
      card("Last replay", last ? when(last.at) : "none yet", "writeback-last-at")),
    last ? h("p", { "data-testid": "writeback-last" }, "The last replay: ", Object.entries(last.results).map(([k, v]) => `${v} ${k}`).join(", "), ".") : undefined,
    w.error ? h("p", { class: "bad", "data-testid": "writeback-error" }, `The last replay stopped: ${w.error}`) : undefined,
    w.waiting.length
      ? h("table", { "data-testid": "writeback-waiting" }, h("thead", {}, h("tr", {}, h("th", {}, "Write"), h("th", {}, "Taken"))),
        h("tbody", {}, w.waiting.map((e) => h("tr", {}, h("td", { class: "mono" }, writeText(e)), h("td", {}, when(e.at))))))
      : h("p", { class: "muted" }, "Nothing waits for the upstream."),
    w.decided.length
      ? [h("h2", {}, "Decided against by the replay"),
        h("table", { "data-testid": "writeback-decided" }, h("thead", {}, h("tr", {}, ["Write", "Result", "The upstream had", "Why"].map((t) => h("th", {}, t)))),
          h("tbody", {}, w.decided.map((c) => h("tr", {}, h("td", { class: "mono" }, writeText(c.entry)), h("td", { class: "bad" }, c.result),
            h("td", { class: "mono" }, c.upstream ? short(c.upstream) : "–"), h("td", {}, c.reason)))))]
      : undefined,
  ];
}

async function clusterView() {
  const { body } = await call(`${API}/overview`, catalogScope);
  const c = body.cluster;
  if (!c) return show(h("h1", {}, "Cluster"), h("p", { class: "muted" }, "This instance has no cluster section: it is not announced in etcd."));
  show(
    h("h1", {}, "Cluster"),
    h("p", {}, "This instance is ", h("strong", { "data-testid": "registered" }, c.registered ? "registered" : "not registered"), " for the load balancer."),
    c.error ? h("p", { class: "bad" }, `etcd: ${c.error}`) : [
      h("table", { "data-testid": "instances" }, h("thead", {}, h("tr", {}, ["Address", "Role", "Version", "Started"].map((t) => h("th", {}, t)))),
        h("tbody", {}, c.instances.map((i) => h("tr", {}, h("td", { class: "mono" }, i.address), h("td", {}, i.role), h("td", {}, i.version), h("td", {}, when(i.started)))))),
      h("h2", {}, "Upstream file (as lain-registry upstreams writes it)"),
      h("pre", { "data-testid": "upstream-file" }, c.upstreamFile || "(no instance registered)"),
    ],
  );
}

// ---- routing ----

async function route() {
  clearTimeout(poll);
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const query = new URLSearchParams(search ?? "");
  const parts = (path || "/").split("/").filter(Boolean);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] ?? ""}` || (parts.length === 0 && a.getAttribute("href") === "#/"));
  if (session.info.auth !== "none" && !session.user) return loginView();
  try {
    if (parts[0] === "r") await repositoryView(decodeURIComponent(parts.slice(1).join("/")));
    else if (parts[0] === "m") await manifestView(decodeURIComponent(parts.slice(1, -1).join("/")), decodeURIComponent(parts.at(-1)));
    else if (parts[0] === "storage") await storageView();
    else if (parts[0] === "mirror") await mirrorView();
    else if (parts[0] === "cluster") await clusterView();
    else await repositoriesView(query);
  } catch (err) {
    // htpasswd: a 401 means the password is wrong. With tokens the login already worked; a 401
    // means these credentials may not do this, which the error says.
    if (err.status === 401 && session.info.auth === "htpasswd") return loginView("Those credentials were refused.");
    failure(err);
  }
}

async function start() {
  session.info = await (await fetch(`${API}/info`)).json();
  document.title = `lain-registry ${session.info.version}`;
  document.getElementById("mirror-link").classList.toggle("hidden", session.info.role !== "mirror");
  addEventListener("hashchange", route);
  await route();
}

start().catch(failure);
