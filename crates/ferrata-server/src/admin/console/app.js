// The Ferrata console: a small single-page app over the admin API (/api/v1). No framework,
// no CDN: everything it needs is served by ferrata-server itself.
"use strict";

const STATUSES = ["Begin", "Committing", "CommitRetrying", "Rollbacking", "RollbackRetrying",
  "TimeoutRollbacking", "TimeoutRollbackRetrying", "AsyncCommitting", "CommitFailed",
  "RollbackFailed", "TimeoutRollbackFailed", "CommitRetryTimeout", "RollbackRetryTimeout"];
const FAILED = ["CommitFailed", "RollbackFailed", "TimeoutRollbackFailed", "CommitRetryTimeout",
  "RollbackRetryTimeout"];
const PAGE = 50;
const SAMPLES = 150; // 5 minutes of 2-second samples
const state = { token: sessionStorage.getItem("ferrata-token") || "", who: null, samples: [], timer: null, generation: 0 };
const MIN_SLOTS = 30; // a chart spans at least a minute, filling from the left

// ---- helpers ---------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const main = () => document.getElementById("main");
function show(...nodes) { main().replaceChildren(...nodes); }
function age(ms) {
  ms = Math.max(0, ms);
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  if (ms < 3600000) return Math.floor(ms / 60000) + " min " + Math.floor(ms % 60000 / 1000) + " s";
  return Math.floor(ms / 3600000) + " h " + Math.floor(ms % 3600000 / 60000) + " min";
}
function time(ms) { return ms ? new Date(ms).toLocaleString() : "-"; }
function statusBadge(status) {
  const kind = FAILED.includes(status) ? "bad"
    : ["Committed", "Rollbacked", "TimeoutRollbacked", "Finished"].includes(status) ? "good"
    : status === "Begin" ? "" : "busy";
  return el("span", { class: "status " + kind, "data-status": status, text: status });
}
function toast(message, bad = false) {
  const node = document.getElementById("toast");
  node.textContent = message;
  node.className = bad ? "bad" : "";
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 6000);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(method, path) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const answer = await fetch(path, { method, headers });
  let body = null;
  try { body = await answer.json(); } catch (_) { body = null; }
  if (!answer.ok) throw new ApiError(answer.status, (body && body.error) || answer.statusText);
  return body;
}
const get = (path) => api("GET", path);

// ---- login -----------------------------------------------------------------------------
async function identify() {
  try {
    state.who = await get("/api/v1/whoami");
  } catch (error) {
    if (error.status === 401) { state.who = null; return false; }
    throw error;
  }
  get("/api/v1/server").then((server) => { state.server = server; document.getElementById("node").textContent = "node " + server.node; }).catch(() => {});
  // On a shared database the transactions page can show every node's transactions.
  state.cluster = await get("/api/v1/cluster").then(() => true, () => false);
  const who = document.getElementById("who");
  who.textContent = state.who.operator ? "signed in as " + state.who.operator : "read-only (no admin tokens configured)";
  document.getElementById("logout").hidden = !state.token;
  return true;
}
function loginPage(message) {
  const input = el("input", { id: "token", type: "password", autocomplete: "current-password", placeholder: "admin token" });
  const error = el("p", { class: "error", id: "login-error", text: message || "" });
  const submit = async (event) => {
    event.preventDefault();
    state.token = input.value.trim();
    sessionStorage.setItem("ferrata-token", state.token);
    if (!(await identify())) { error.textContent = "That token is not valid."; return; }
    if (location.hash === "#/" || location.hash === "") route(); else location.hash = "#/";
  };
  show(el("form", { class: "panel login", onsubmit: submit },
    el("h2", { text: "Sign in" }),
    el("p", { class: "note", text: "Use an admin token whose SHA-256 is in the server's [[admin.tokens]] (ferrata-server hash-token)." }),
    input, el("button", { id: "login", class: "primary", type: "submit", text: "Sign in" }), error));
  input.focus();
}

// ---- confirmation and actions ----------------------------------------------------------
function confirmAction(title, text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
async function act(method, path, title, text, okLabel) {
  if (!(await confirmAction(title, text, okLabel))) return null;
  try {
    const result = await api(method, path);
    toast(result.action + ": " + result.status);
    return result;
  } catch (error) {
    toast(error.message, true);
    return null;
  }
}

// ---- overview --------------------------------------------------------------------------
function chart(title, series) {
  const width = 600, height = 180, pad = 28;
  const all = series.flatMap((s) => s.points);
  const max = Math.max(1, ...all);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const line = (x1, y1, x2, y2, color) => {
    const l = document.createElementNS(svg.namespaceURI, "line");
    Object.entries({ x1, y1, x2, y2, stroke: color, "stroke-width": 1 }).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  const label = (x, y, text) => {
    const t = document.createElementNS(svg.namespaceURI, "text");
    Object.entries({ x, y, "font-size": 10, fill: "#687285" }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = text;
    svg.append(t);
  };
  line(pad, height - pad, width, height - pad, "#dde1e7");
  line(pad, 8, width, 8, "#eef0f3");
  label(0, 14, max.toFixed(max < 10 ? 1 : 0));
  label(0, height - pad, "0");
  for (const s of series) {
    if (s.points.length < 2) continue;
    const step = (width - pad) / (Math.max(MIN_SLOTS, s.points.length) - 1);
    const d = s.points.map((v, i) => `${i ? "L" : "M"}${(pad + i * step).toFixed(1)},${(height - pad - (v / max) * (height - pad - 8)).toFixed(1)}`).join(" ");
    const path = document.createElementNS(svg.namespaceURI, "path");
    Object.entries({ d, fill: "none", stroke: s.color, "stroke-width": 2 }).forEach(([k, v]) => path.setAttribute(k, v));
    svg.append(path);
  }
  const legend = el("div", { class: "legend" }, series.map((s) =>
    el("span", {}, el("i", { style: `background:${s.color}` }), s.name + " " + (s.points.length ? s.points[s.points.length - 1].toFixed(1) : "-"))));
  return el("div", { class: "panel chart" }, el("h3", { text: title }), svg, legend);
}
function rates(key) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1], b = state.samples[i];
    const seconds = Math.max(0.001, (b.at_ms - a.at_ms) / 1000);
    out.push(Math.max(0, (key(b) - key(a)) / seconds));
  }
  return out;
}
function latency(type) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const find = (s) => s.requests.find((r) => r.type === type) || { count: 0, total_us: 0 };
    const a = find(state.samples[i - 1]), b = find(state.samples[i]);
    const count = b.count - a.count;
    out.push(count > 0 ? (b.total_us - a.total_us) / count / 1000 : 0);
  }
  return out;
}
function ended(sample, statuses) { return statuses.reduce((sum, s) => sum + (sample.ended[s] || 0), 0); }
async function overview() {
  const sample = await get("/api/v1/stats");
  state.samples.push(sample);
  if (state.samples.length > SAMPLES) state.samples.shift();
  const card = (label, value, id) => el("div", { class: "card" }, el("div", { class: "value", id, text: value }), el("div", { class: "label", text: label }));
  show(el("h2", { text: "Overview" }),
    el("div", { class: "cards" },
      card("Active transactions", sample.active, "stat-active"),
      card("Sessions held", sample.sessions, "stat-sessions"),
      card("Branches", sample.branches, "stat-branches"),
      card("Locked rows", sample.locked_rows, "stat-locks"),
      card("Connections", sample.connections, "stat-connections"),
      card("Failed, held", "…", "stat-failed"),
      card("Begun since start", sample.begun, "stat-begun")),
    el("div", { class: "charts" },
      chart("Transactions per second", [
        { name: "begun", color: "#1f6feb", points: rates((s) => s.begun) },
        { name: "committed", color: "#1a7f37", points: rates((s) => ended(s, ["Committed"])) },
        { name: "rolled back", color: "#b35900", points: rates((s) => ended(s, ["Rollbacked", "TimeoutRollbacked"])) }]),
      chart("Failures per second", [
        { name: "failed", color: "#c62828", points: rates((s) => ended(s, FAILED)) }]),
      chart("Average latency (ms)", [
        { name: "GlobalBegin", color: "#1f6feb", points: latency("GlobalBegin") },
        { name: "BranchRegister", color: "#8250df", points: latency("BranchRegister") },
        { name: "GlobalCommit", color: "#1a7f37", points: latency("GlobalCommit") },
        { name: "GlobalRollback", color: "#b35900", points: latency("GlobalRollback") }])),
    el("p", { class: "note", text: "Sampled every 2 s while this page is open." }));
  const failed = await get("/api/v1/transactions?limit=1&status=" + FAILED.join(","));
  document.getElementById("stat-failed").textContent = failed.total;
}

// ---- transactions ----------------------------------------------------------------------
function filtersFromHash(params) {
  return { status: params.get("status") || "", application: params.get("application") || "",
    xid: params.get("xid") || "", min_age: params.get("min_age") || "", offset: Number(params.get("offset") || 0),
    cluster: params.get("scope") === "cluster" };
}
async function transactions(params) {
  const f = filtersFromHash(params);
  const query = new URLSearchParams({ limit: PAGE, offset: f.offset });
  for (const key of ["status", "application", "xid", "min_age"]) if (f[key]) query.set(key, f[key]);
  const page = await get((f.cluster ? "/api/v1/cluster/transactions?" : "/api/v1/transactions?") + query);
  const scope = el("input", { id: "cluster-scope", type: "checkbox", checked: f.cluster });
  const status = el("select", { id: "status" }, el("option", { value: "", text: "any status" }),
    el("option", { value: FAILED.join(","), text: "any failure" }),
    STATUSES.map((s) => el("option", { value: s, text: s, selected: s === f.status })));
  if (f.status === FAILED.join(",")) status.value = f.status;
  const application = el("input", { id: "application", value: f.application, placeholder: "application id" });
  const xid = el("input", { id: "xid", value: f.xid, placeholder: "part of the XID" });
  const minAge = el("input", { id: "min-age", value: f.min_age, placeholder: "30s, 5m", size: 8 });
  const apply = (offset) => {
    const next = new URLSearchParams();
    if (status.value) next.set("status", status.value);
    if (application.value) next.set("application", application.value);
    if (xid.value) next.set("xid", xid.value);
    if (minAge.value) next.set("min_age", minAge.value);
    if (scope.checked) next.set("scope", "cluster");
    if (offset) next.set("offset", offset);
    location.hash = "#/transactions?" + next;
  };
  const rows = page.items.map((t) => el("tr", {},
    el("td", { class: "mono" }, el("a", { href: "#/tx/" + encodeURIComponent(t.xid), class: "tx-link", text: t.xid })),
    el("td", {}, statusBadge(t.status)), el("td", { text: t.application_id }), el("td", { text: t.group }),
    el("td", { text: t.name }), el("td", { text: age(t.age_ms) }), el("td", { text: t.branches }),
    f.cluster ? el("td", { class: "mono", text: t.driven_by }) : null));
  const headers = ["XID", "Status", "Application", "Group", "Name", "Age", "Branches"].concat(f.cluster ? ["Driven by"] : []);
  show(el("h2", { text: "Global transactions" }),
    el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(0); } },
      el("label", {}, "Status", status), el("label", {}, "Application", application),
      el("label", {}, "XID", xid), el("label", {}, "Older than", minAge),
      state.cluster ? el("label", {}, "Every node", scope) : null,
      el("button", { id: "apply", class: "primary", type: "submit", text: "Filter" })),
    el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
      el("tbody", { id: "tx-rows" }, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "note", text: "No transaction matches." })))),
    el("div", { class: "pager" },
      el("button", { text: "Previous", disabled: f.offset === 0, onclick: () => apply(Math.max(0, f.offset - PAGE)) }),
      el("span", { id: "tx-total", text: `${page.total ? f.offset + 1 : 0}–${f.offset + page.items.length} of ${page.total}` }),
      el("button", { text: "Next", disabled: f.offset + PAGE >= page.total, onclick: () => apply(f.offset + PAGE) })));
}

function eventText(e) {
  switch (e.event) {
    case "recovered": return `taken over from the store in ${e.status}`;
    case "status": return `status → ${e.status}`;
    case "branch-registered": return `branch ${e.branch_id} registered`;
    case "phase2-sent": return `${e.phase2} sent to branch ${e.branch_id}`;
    case "phase2-answered": return `branch ${e.branch_id} answered ${e.answer}`;
    case "operator": return `${e.operator}: ${e.action}`;
    default: return e.event;
  }
}
async function transaction(xid) {
  let detail;
  try {
    detail = await get("/api/v1/transactions/" + encodeURIComponent(xid));
  } catch (error) {
    if (error.status !== 404) throw error;
    show(el("h2", { class: "mono", text: xid }), el("p", { id: "tx-gone", class: "note", text: "This TC no longer holds this transaction: it has ended (or another node drives it)." }),
      el("a", { href: "#/transactions", text: "Back to the transactions" }));
    return;
  }
  const t = detail.transaction;
  const canAct = state.who && state.who.can_act;
  if (!state.server) state.server = await get("/api/v1/server").catch(() => null);
  // A saga's path, drawn by the engine that runs it (admin.saga_pictures).
  const pictures = state.server && state.server.saga_pictures;
  const picture = pictures && String(t.name || "").startsWith("$Saga_")
    ? el("div", { class: "panel" }, el("img", { id: "saga-picture", alt: "the saga's path", src: pictures + "/instances/" + encodeURIComponent(xid) + ".svg" }))
    : null;
  const path = "/api/v1/transactions/" + encodeURIComponent(xid);
  const after = () => route();
  const button = (id, label, title, text, method, suffix, danger) => el("button", {
    id, text: label, class: danger ? "danger" : "", disabled: !canAct,
    onclick: async () => { if (await act(method, path + suffix, title, text, label)) after(); } });
  const branchRows = detail.branches.map((b) => el("tr", {},
    el("td", { class: "mono", text: b.branch_id }), el("td", { text: b.branch_type }), el("td", {}, statusBadge(b.status)),
    el("td", { class: "mono", text: b.resource_id }), el("td", { class: "mono", text: b.lock_key || "-" }),
    el("td", { class: "mono", text: b.client_id }),
    el("td", {}, el("button", { class: "resolve", "data-branch": b.branch_id, text: "Resolve", disabled: !canAct,
      onclick: async () => {
        if (await act("POST", `${path}/branches/${b.branch_id}/resolve`, "Resolve branch " + b.branch_id,
          "Only after you repaired its data by hand: the TC forgets this branch and releases its locks. When no branch is left, the transaction ends rolled back.", "Resolve")) after();
      } }))));
  const started = t.begin_time_ms;
  const timeline = detail.history.map((e) => el("li", { class: e.event === "operator" ? "operator" : (e.answer && e.answer !== "PhaseTwoCommitted" && e.answer !== "PhaseTwoRollbacked") ? "bad" : "" },
    el("span", { class: "when", text: "+" + age(e.at_ms - started) }), eventText(e)));
  show(el("h2", { class: "mono", id: "tx-xid", text: xid }),
    el("div", { class: "panel" },
      el("p", {}, Object.assign(statusBadge(t.status), { id: "tx-status" })),
      el("p", { class: "note", text: `${t.application_id} · ${t.group} · ${t.name} · begun ${time(t.begin_time_ms)} (${age(t.age_ms)} ago) · timeout ${age(t.timeout_ms)} · failed passes ${detail.failed_passes}` + (detail.retry_at_ms ? ` · next retry ${time(detail.retry_at_ms)}` : "") }),
      el("div", { class: "actions" },
        button("retry", "Retry now", "Retry phase 2 now", "Run this transaction's pending phase 2 now instead of after its backoff.", "POST", "/retry", false),
        button("commit", "Commit", "Commit " + xid, "From Begin, commits it as its TM would; while committing, retries now.", "POST", "/commit", false),
        button("rollback", "Roll back", "Roll back " + xid, "From Begin, rolls it back as its TM would; while rolling back, retries now.", "POST", "/rollback", true),
        button("delete", "Delete", "Delete " + xid, "Only for a transaction that ended in failure: the TC forgets it and releases its locks. Repair the data first.", "DELETE", "", true)),
      canAct ? null : el("p", { class: "note", text: "Sign in with an admin token to act." })),
    el("h3", { text: "Branches" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["Branch", "Type", "Status", "Resource", "Lock key", "Client", ""].map((h) => el("th", { text: h })))),
      el("tbody", { id: "branch-rows" }, branchRows.length ? branchRows : el("tr", {}, el("td", { colspan: 7, class: "note", text: "No branch." })))),
    ...(picture ? [el("h3", { text: "Saga" }), picture] : []),
    el("h3", { text: "Timeline" }),
    el("div", { class: "panel" }, el("ul", { class: "timeline", id: "timeline" }, el("li", {}, el("span", { class: "when", text: time(started) }), "begun"), timeline),
      detail.history_dropped ? el("p", { class: "note", text: `${detail.history_dropped} entries left out` }) : null));
}

// ---- locks and clients -----------------------------------------------------------------
async function locks(params) {
  const query = new URLSearchParams({ limit: 200 });
  for (const key of ["resource", "table", "xid"]) if (params.get(key)) query.set(key, params.get(key));
  const page = await get("/api/v1/locks?" + query);
  const now = Date.now();
  const table = el("input", { id: "lock-table", value: params.get("table") || "", placeholder: "table" });
  const rows = page.items.map((l) => el("tr", {},
    el("td", { class: "mono", text: l.resource_id }), el("td", { text: l.table }), el("td", { class: "mono", text: l.pk }),
    el("td", { class: "mono" }, el("a", { href: "#/tx/" + encodeURIComponent(l.xid), text: l.xid })),
    el("td", { class: "mono", text: l.branch_id }), el("td", { text: l.since_ms ? age(now - l.since_ms) : "-" })));
  show(el("h2", { text: "Global locks" }),
    el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); location.hash = "#/locks" + (table.value ? "?table=" + encodeURIComponent(table.value) : ""); } },
      el("label", {}, "Table", table), el("button", { class: "primary", type: "submit", text: "Filter" })),
    el("table", {}, el("thead", {}, el("tr", {}, ["Resource", "Table", "Key", "Held by", "Branch", "Held for"].map((h) => el("th", { text: h })))),
      el("tbody", { id: "lock-rows" }, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "note", text: "No row is locked." })))),
    el("p", { class: "note", id: "lock-total", text: `${page.items.length} of ${page.total} rows` }));
}
async function clients() {
  const page = await get("/api/v1/clients");
  const rows = page.items.map((c) => el("tr", {},
    el("td", { text: c.application_id }), el("td", { text: c.role.toUpperCase() }), el("td", { text: c.version }),
    el("td", { class: "mono", text: c.address }), el("td", { class: "mono", text: c.resources.join(", ") || "-" })));
  show(el("h2", { text: "Connected clients" }),
    el("table", {}, el("thead", {}, el("tr", {}, ["Application", "Role", "Version", "Address", "Resources"].map((h) => el("th", { text: h })))),
      el("tbody", { id: "client-rows" }, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "note", text: "No client is connected." })))));
}

// ---- routing ---------------------------------------------------------------------------
async function route() {
  clearInterval(state.timer);
  const generation = ++state.generation;
  const hash = location.hash.slice(1) || "/";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  const page = path.startsWith("/tx/") ? "transactions" : (path.slice(1) || "overview");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  try {
    if (path === "/login") return loginPage();
    if (state.who === null && !(await identify())) return loginPage();
    if (path === "/" || path === "") {
      await overview();
      // Only the latest navigation keeps sampling.
      if (generation === state.generation) state.timer = setInterval(() => overview().catch(() => {}), 2000);
    } else if (path === "/transactions") await transactions(params);
    else if (path.startsWith("/tx/")) await transaction(decodeURIComponent(path.slice(4)));
    else if (path === "/locks") await locks(params);
    else if (path === "/clients") await clients();
    else show(el("p", { text: "No such page." }));
  } catch (error) {
    if (error.status === 401) { state.who = null; return loginPage("Your token was refused; sign in again."); }
    show(el("p", { class: "error", text: "Cannot load this page: " + error.message }));
  }
}

function start() {
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem("ferrata-token");
    state.token = ""; state.who = null;
    document.getElementById("who").textContent = "";
    location.hash = "#/login";
  });
  window.addEventListener("hashchange", route);
  route();
}
start();
