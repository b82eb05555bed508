// edgelet explorer: fills the server-rendered pages from the control API and does every
// action through it. Plain DOM, no framework; text always goes in as textContent.
"use strict";

const API = document.body.dataset.api;
const BASE = document.body.dataset.base;
const SECTION = document.body.dataset.section;
const $ = (sel) => document.querySelector(sel);

// -- helpers ---------------------------------------------------------------------------------

/** An element: h("td", {class: "num"}, "12", child...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Show the API's error (or any message) on the page, as it is. */
function say(text, kind) {
  const box = $("#message");
  box.textContent = text;
  box.className = kind || "";
  box.hidden = false;
}
function clearSay() { $("#message").hidden = true; }

class ApiFailure extends Error {}

/** Call the control API; resolves to the whole envelope, throws ApiFailure with the API's message. */
async function api(method, path, opts = {}) {
  const init = { method, headers: {} };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers["content-type"] = "application/json";
  } else if (opts.body !== undefined) {
    init.body = opts.body;
    if (opts.type) init.headers["content-type"] = opts.type;
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch (err) {
    throw new ApiFailure(`${method} ${path}: edgelet did not answer (${err.message}); is \`edgelet dev\` running?`);
  }
  let env = null;
  try { env = await resp.json(); } catch (_) { /* not JSON */ }
  if (!env || !env.success) {
    const errs = env && env.errors && env.errors.length
      ? env.errors.map((e) => `${e.message} (code ${e.code})`).join("\n") : `HTTP ${resp.status}`;
    throw new ApiFailure(`${method} ${path} failed: ${errs}`);
  }
  return env;
}

/** Run an action; its failure becomes the page's message. Returns the result or undefined.
 *  On success the message becomes ``done``; with ``done === null`` (a refresh) it stays. */
async function act(fn, done) {
  try {
    const out = await fn();
    if (done) say(done, "info"); else if (done !== null) clearSay();
    return out;
  } catch (err) {
    say(err instanceof ApiFailure ? err.message : `${err.name}: ${err.message}`);
    return undefined;
  }
}

const enc = encodeURIComponent;
const encPath = (key) => key.split("/").map(enc).join("/");
const params = new URLSearchParams(location.search);
function setParams(values) {
  const next = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) { if (v) next.set(k, v); else next.delete(k); }
  history.replaceState(null, "", `${location.pathname}?${next}`);
}
const show = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));
const short = (v, n = 120) => { const s = show(v) ?? ""; return s.length > n ? s.slice(0, n - 1) + "…" : s; };
const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
const iso = (s) => (s ? s.replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
function parseJson(text, what) {
  try { return JSON.parse(text); } catch (err) { throw new ApiFailure(`${what} is not valid JSON: ${err.message}`); }
}
function options(select, items, selected) {
  select.replaceChildren(...items.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

// -- SQL grid (D1 and Durable Objects) -----------------------------------------------------------

/** Results (one per statement) as grids; an error as a grid row that says it. */
function sqlGrid(target, outcomes) {
  target.replaceChildren(...outcomes.map((o) => {
    if (o.error) {
      return h("table", { class: "grid" }, h("tbody", {}, h("tr", {}, h("td", { class: "error" }, o.error))));
    }
    const head = h("tr", {}, o.columns.map((c) => h("th", {}, c)));
    const rows = o.rows.map((r) => h("tr", {}, r.map((v) => h("td", { class: typeof v === "number" ? "num" : "" },
      v === null ? "NULL" : String(v)))));
    const note = h("p", { class: "muted" }, `${o.rows.length} row(s)` + (o.meta ? `, ${o.meta.changes ?? 0} changed, ${
      (o.meta.duration ?? 0).toFixed ? (o.meta.duration ?? 0).toFixed(2) : o.meta.duration} ms` : "") +
      (o.rows_written ? `, ${o.rows_written} written` : ""));
    // the control API returns at most so many rows per statement; say so rather than pass a cut list off as whole
    const cut = o.truncated ? h("p", { class: "warning truncated" }, o.truncated) : null;
    return h("div", {}, cut, h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, rows)), note);
  }));
}

function sqlBox(run) {
  const form = $("#sql-form");
  const text = $("#sql");
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(text.value); });
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(text.value); }
  });
}

// -- Workers -------------------------------------------------------------------------------------

function workerUrl(w) {
  const port = location.port ? `:${location.port}` : "";
  return w.primary ? `${location.protocol}//${location.hostname}${port}/` : `${location.protocol}//${w.name}.localhost${port}/`;
}

async function workersPage() {
  const env = await act(() => api("GET", "/workers"));
  if (!env) return;
  const box = $("#workers");
  box.replaceChildren(...env.result.map((w) => h("div", { class: "card", "data-worker": w.name },
    h("h2", {}, w.name, w.primary ? " (primary)" : ""),
    h("p", {}, h("a", { href: workerUrl(w), target: "_blank" }, workerUrl(w))),
    h("p", { class: "muted" }, `${w.main} · pid ${w.pid ?? "-"} · restarts ${w.restarts}`),
    h("p", {}, "Handlers: ", (w.handlers || []).join(", ") || "none", w.crons && w.crons.length ? ` · crons: ${w.crons.join(", ")}` : ""),
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, h("th", {}, "Binding"), h("th", {}, "Kind"), h("th", {}, "Points at"))),
      h("tbody", {}, (w.bindings || []).map((b) => h("tr", {}, h("td", {}, b.name), h("td", {}, b.kind),
        h("td", {}, Object.entries(b.options || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ")))))),
  )));
  const sel = $("#log-worker");
  options(sel, [["", "all"], ...env.result.map((w) => [w.name, w.name])], params.get("worker") || "");
  sel.addEventListener("change", () => setParams({ worker: sel.value }));
  $("#log-clear").addEventListener("click", () => $("#log").replaceChildren());
  followLog();
}

/** The live log: the control API's NDJSON tail stream, read as it arrives. */
async function followLog() {
  const out = $("#log");
  let resp;
  try { resp = await fetch(API + "/tail"); } catch (err) { say(`the live log could not connect: ${err.message}`); return; }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (_) { break; }
    if (chunk.done) break;
    buf += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl); buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let ev; try { ev = JSON.parse(line); } catch (_) { continue; }
      if (ev.type === "hello") continue;
      const only = $("#log-worker").value;
      if (only && ev.worker && ev.worker !== only) continue;
      const t = ev.time ? new Date(ev.time * 1000).toISOString().slice(11, 23) : "";
      const text = ev.message ?? ev.line ?? JSON.stringify(ev);
      out.append(h("div", { class: ev.level || "" }, `${t} ${ev.worker ? "[" + ev.worker + "] " : ""}${text}`));
      while (out.childElementCount > 500) out.firstElementChild.remove();
      out.scrollTop = out.scrollHeight;
    }
  }
  out.append(h("div", { class: "warning" }, "(the log stream ended: edgelet dev stopped; reload when it runs again)"));
}

// -- KV ------------------------------------------------------------------------------------------

async function kvPage() {
  const nsSel = $("#kv-ns");
  const env = await act(() => api("GET", "/kv/namespaces"));
  if (!env) return;
  if (!env.result.length) { say("no KV namespaces: add kv_namespaces to the config", "info"); return; }
  options(nsSel, env.result.map((n) => [n.id, `${n.id} (${n.bindings.map((b) => b.binding).join(", ") || "no binding"}, ${n.key_count} keys)`]),
    params.get("ns") || env.result[0].id);
  $("#kv-prefix").value = params.get("prefix") || "";
  let cursors = [""];
  const ns = () => nsSel.value;
  async function page(cursor) {
    const q = new URLSearchParams({ prefix: $("#kv-prefix").value, limit: "50" });
    if (cursor) q.set("cursor", cursor);
    const res = await act(() => api("GET", `/kv/${enc(ns())}/keys?${q}`), null);
    if (!res) return;
    const body = $("#kv-keys tbody");
    body.replaceChildren(...res.result.map((k) => h("tr", { "data-key": k.name },
      h("td", {}, h("a", { onclick: () => openKey(k.name) }, k.name)),
      h("td", {}, k.expiration ? when(k.expiration * 1000) : ""),
      h("td", {}, k.metadata === undefined ? "" : short(k.metadata, 60)))));
    $("#kv-count").textContent = res.result.length ? `${res.result.length} key(s) on this page` : "no keys";
    const next = res.result_info.cursor;
    $("#kv-next").disabled = !next;
    $("#kv-next").onclick = () => { cursors.push(next); page(next); };
  }
  async function openKey(key) {
    const res = await act(() => api("GET", `/kv/${enc(ns())}/values/${encPath(key)}`), null);
    if (!res) return;
    for (const tr of document.querySelectorAll("#kv-keys tr")) tr.classList.toggle("selected", tr.dataset.key === key);
    const info = res.result_info;
    $("#kv-key").value = key;
    $("#kv-value").value = res.result;
    $("#kv-value").readOnly = info.encoding === "base64";
    $("#kv-encoding").textContent = info.encoding === "base64" ? "Binary value, shown as base64 (read-only here)." : "";
    $("#kv-metadata").value = info.metadata === null ? "" : JSON.stringify(info.metadata);
    $("#kv-expiration").textContent = info.expiration ? `Expires ${when(info.expiration * 1000)}` : "Never expires.";
    $("#kv-ttl").value = "";
  }
  $("#kv-find").addEventListener("submit", (ev) => {
    ev.preventDefault(); cursors = [""];
    setParams({ ns: ns(), prefix: $("#kv-prefix").value }); page("");
  });
  nsSel.addEventListener("change", () => { setParams({ ns: ns() }); page(""); });
  $("#kv-first").addEventListener("click", () => page(""));
  $("#kv-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("#kv-key").value;
    const ok = await act(async () => {
      const q = new URLSearchParams();
      const meta = $("#kv-metadata").value.trim();
      if (meta) { parseJson(meta, "the metadata"); q.set("metadata", meta); }
      const ttl = $("#kv-ttl").value.trim();
      if (ttl) q.set("expiration_ttl", ttl);
      return api("PUT", `/kv/${enc(ns())}/values/${encPath(key)}?${q}`, { body: $("#kv-value").value, type: "application/octet-stream" });
    }, `saved ${key}`);
    if (ok) { await page(""); await openKey(key); }
  });
  $("#kv-delete").addEventListener("click", async () => {
    const key = $("#kv-key").value;
    if (await act(() => api("DELETE", `/kv/${enc(ns())}/values/${encPath(key)}`), `deleted ${key}`)) page("");
  });
  $("#kv-new").addEventListener("click", () => {
    for (const id of ["#kv-key", "#kv-value", "#kv-metadata", "#kv-ttl"]) $(id).value = "";
    $("#kv-value").readOnly = false; $("#kv-encoding").textContent = ""; $("#kv-expiration").textContent = "";
    $("#kv-key").focus();
  });
  await page("");
  if (params.get("key")) openKey(params.get("key"));
}

// -- D1 ------------------------------------------------------------------------------------------

async function d1Page() {
  const env = await act(() => api("GET", "/d1/database"));
  if (!env) return;
  if (!env.result.length) { say("no D1 databases: add d1_databases to the config", "info"); return; }
  const sel = $("#d1-db");
  options(sel, env.result.map((d) => [d.uuid || d.name, d.name]), params.get("db") || env.result[0].uuid || env.result[0].name);
  const db = () => sel.value;
  let table = null; let offset = 0;
  const PAGE = 50;
  async function run(sql, bind) {
    const out = $("#sql-result");
    try {
      const res = await api("POST", `/d1/database/${enc(db())}/raw`, { json: { sql, params: bind || [] } });
      clearSay();
      sqlGrid(out, res.result.map((r) => ({ columns: r.results.columns, rows: r.results.rows, meta: r.meta,
        truncated: r.truncation ? r.truncation.message : null })));
      return res;
    } catch (err) {
      sqlGrid(out, [{ error: err.message }]);
      return null;
    }
  }
  async function tables() {
    const info = env.result.find((d) => (d.uuid || d.name) === db());
    $("#d1-info").textContent = info ? `${info.num_tables} table(s), ${info.file_size} bytes` : "";
    const res = await act(() => api("POST", `/d1/database/${enc(db())}/raw`, { json: {
      sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name" } }));
    if (!res) return;
    $("#d1-tables").replaceChildren(...res.result[0].results.rows.map(([name]) =>
      h("li", {}, h("a", { onclick: () => { table = name; offset = 0; browse(); } }, name))));
  }
  async function browse() {
    const quoted = '"' + table.replaceAll('"', '""') + '"';
    $("#sql").value = `SELECT * FROM ${quoted} LIMIT ${PAGE} OFFSET ${offset}`;
    const res = await run($("#sql").value);
    $("#sql-pager").hidden = false;
    $("#sql-prev").disabled = offset === 0;
    $("#sql-next").disabled = !res || res.result[0].results.rows.length < PAGE;
  }
  $("#sql-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); browse(); });
  $("#sql-next").addEventListener("click", () => { offset += PAGE; browse(); });
  sel.addEventListener("change", () => { setParams({ db: db() }); tables(); });
  sqlBox((sql) => { $("#sql-pager").hidden = true; run(sql).then(() => tables()); });
  await tables();
}

// -- R2 ------------------------------------------------------------------------------------------

async function r2Page() {
  const env = await act(() => api("GET", "/r2/buckets"));
  if (!env) return;
  if (!env.result.length) { say("no R2 buckets: add r2_buckets to the config", "info"); return; }
  const sel = $("#r2-bucket");
  options(sel, env.result.map((b) => [b.name, `${b.name} (${b.object_count} objects)`]), params.get("bucket") || env.result[0].name);
  $("#r2-prefix").value = params.get("prefix") || "";
  const bucket = () => sel.value;
  async function page(cursor) {
    const prefix = $("#r2-prefix").value;
    const q = new URLSearchParams({ prefix, delimiter: $("#r2-delimiter").value, limit: "100" });
    if (cursor) q.set("cursor", cursor);
    setParams({ bucket: bucket(), prefix });
    const res = await act(() => api("GET", `/r2/buckets/${enc(bucket())}/objects?${q}`), null);
    if (!res) return;
    const parts = prefix.split($("#r2-delimiter").value || "/").filter(Boolean);
    const crumbs = [h("a", { onclick: () => go("") }, bucket())];
    let acc = "";
    for (const p of parts) { acc += p + ($("#r2-delimiter").value || "/"); const to = acc; crumbs.push(" / ", h("a", { onclick: () => go(to) }, p)); }
    $("#r2-path").replaceChildren(...crumbs);
    const folders = (res.result_info.delimited || []).map((p) => h("tr", { "data-prefix": p },
      h("td", {}, h("a", { onclick: () => go(p) }, "▸ " + p)), h("td", {}), h("td", {}), h("td", {}), h("td", {}), h("td", {})));
    const objects = res.result.map((o) => h("tr", { "data-key": o.key },
      h("td", {}, h("a", { onclick: () => { $("#r2-meta").hidden = false; $("#r2-meta").textContent = JSON.stringify(o, null, 2); } }, o.key)),
      h("td", { class: "num" }, o.size), h("td", {}, o.httpMetadata.contentType || ""), h("td", {}, iso(o.uploaded)),
      h("td", {}, o.etag),
      h("td", {}, h("a", { href: `${API}/r2/buckets/${enc(bucket())}/objects/${encPath(o.key)}`, download: o.key.split("/").pop() }, "download"),
        " ", h("button", { type: "button", class: "danger", onclick: () => remove(o.key) }, "delete"))));
    $("#r2-objects tbody").replaceChildren(...folders, ...objects);
    $("#r2-count").textContent = `${objects.length} object(s), ${folders.length} folder(s) on this page`;
    const next = res.result_info.is_truncated ? res.result_info.cursor : "";
    $("#r2-next").disabled = !next;
    $("#r2-next").onclick = () => page(next);
  }
  function go(prefix) { $("#r2-prefix").value = prefix; page(""); }
  async function remove(key) {
    if (await act(() => api("DELETE", `/r2/buckets/${enc(bucket())}/objects/${encPath(key)}`), `deleted ${key}`)) page("");
  }
  $("#r2-find").addEventListener("submit", (ev) => { ev.preventDefault(); page(""); });
  sel.addEventListener("change", () => go(""));
  $("#r2-first").addEventListener("click", () => page(""));
  $("#r2-upload").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("#r2-file").files[0];
    if (!file) { say("choose a file to upload first"); return; }
    const key = $("#r2-key").value || $("#r2-prefix").value + file.name;
    if (await act(() => api("PUT", `/r2/buckets/${enc(bucket())}/objects/${encPath(key)}`,
      { body: file, type: file.type || "application/octet-stream" }), `uploaded ${key} (${file.size} bytes)`)) page("");
  });
  await page("");
}

// -- Durable Objects -----------------------------------------------------------------------------

async function doPage() {
  const env = await act(() => api("GET", "/durable_objects/namespaces"));
  if (!env) return;
  if (!env.result.length) { say("no Durable Object namespaces: add durable_objects bindings to the config", "info"); return; }
  const sel = $("#do-ns");
  options(sel, env.result.map((n) => [n.name, `${n.class} (${n.script}, ${n.objects} objects)`]), params.get("ns") || env.result[0].name);
  const ns = () => sel.value;
  let current = null;
  async function page(cursor) {
    const q = new URLSearchParams({ limit: "50" });
    if (cursor) q.set("cursor", cursor);
    const res = await act(() => api("GET", `/durable_objects/namespaces/${enc(ns())}/objects?${q}`));
    if (!res) return;
    $("#do-objects tbody").replaceChildren(...res.result.map((o) => h("tr", { "data-id": o.id },
      h("td", {}, h("a", { onclick: () => open(o.id) }, o.id.slice(0, 16) + "…")), h("td", {}, o.name || ""),
      h("td", {}, when(o.last_used)), h("td", {}, o.alarm ? when(o.alarm) : ""))));
    const next = res.result_info.cursor;
    $("#do-next").disabled = !next;
    $("#do-next").onclick = () => page(next);
  }
  async function open(id) {
    const res = await act(() => api("GET", `/durable_objects/namespaces/${enc(ns())}/objects/${enc(id)}?limit=200`));
    if (!res) return;
    current = id;
    const o = res.result;
    for (const tr of document.querySelectorAll("#do-objects tr")) tr.classList.toggle("selected", tr.dataset.id === id);
    $("#do-object").hidden = false;
    $("#do-title").textContent = `${o.class} ${o.name ? "“" + o.name + "”" : ""} ${o.id}`;
    $("#do-alarm").textContent = o.alarm ? `Alarm set for ${when(o.alarm)}` : "No alarm set.";
    $("#do-keys tbody").replaceChildren(...o.keys.map((k) => h("tr", {}, h("td", {}, k.key), h("td", {}, k.type), h("td", {}, short(k.value, 200)))));
    if (o.truncated) $("#do-keys tbody").append(h("tr", {}, h("td", { colspan: 3, class: "muted" }, `… ${o.key_count} keys in all`)));
    $("#do-tables").replaceChildren(...o.tables.map((t) => h("li", {}, h("a", { onclick: () => {
      $("#sql").value = `SELECT * FROM "${t.name.replaceAll('"', '""')}" LIMIT 50`; run($("#sql").value);
    } }, `${t.name} (${t.rows} rows)`))));
  }
  async function run(sql) {
    if (!current) return;
    try {
      const res = await api("POST", `/durable_objects/namespaces/${enc(ns())}/objects/${enc(current)}/query`, { json: { sql } });
      clearSay();
      sqlGrid($("#sql-result"), [res.result]);
    } catch (err) { sqlGrid($("#sql-result"), [{ error: err.message }]); }
  }
  sqlBox(run);
  sel.addEventListener("change", () => { setParams({ ns: ns() }); page(""); });
  $("#do-first").addEventListener("click", () => page(""));
  await page("");
}

// -- Queues --------------------------------------------------------------------------------------

async function queuesPage() {
  let current = params.get("queue") || "";
  let state = params.get("state") || "";
  let summary = {};
  async function list() {
    const env = await act(() => api("GET", "/queues"), null);
    if (!env) return;
    summary = Object.fromEntries(env.result.map((q) => [q.name, q]));
    $("#queues tbody").replaceChildren(...env.result.map((q) => h("tr", { "data-queue": q.name, class: q.name === current ? "selected" : "" },
      h("td", {}, h("a", { onclick: () => select(q.name) }, q.name), q.dead_letter_for.length ? ` (dead letters of ${q.dead_letter_for.join(", ")})` : ""),
      h("td", { class: "num" }, q.backlog), h("td", { class: "num" }, q.delayed), h("td", { class: "num" }, q.in_flight),
      h("td", { class: "num" }, q.acked), h("td", { class: "num" }, q.dead),
      h("td", {}, q.dead_letter_queue ? `${q.dead_letter_queue} (${q.dead_letter_backlog})` : ""))));
    if (!env.result.length) say("no queues: add queues.producers / queues.consumers to the config", "info");
  }
  function tabs() {
    const q = summary[current] || { dead_letter_for: [] };
    const dlq = q.dead_letter_for.length > 0;
    const all = [["waiting", dlq ? "Dead letters" : "Waiting"], ["retrying", "Waiting for retry"], ["inflight", "In flight"], ["dead", "Dead (dropped)"]];
    if (!state) state = "waiting";
    $("#queue-tabs").replaceChildren(...all.map(([s, label]) => h("button", { type: "button", role: "tab", "data-state": s,
      "aria-selected": s === state ? "true" : "false", onclick: () => { state = s; setParams({ state: s }); tabs(); page(""); } }, label)));
  }
  async function page(cursor) {
    const q = new URLSearchParams({ state, limit: "50" });
    if (cursor) q.set("cursor", cursor);
    const res = await act(() => api("GET", `/queues/${enc(current)}/messages?${q}`), null);
    if (!res) return;
    const info = summary[current] || { dead_letter_for: [] };
    const movable = state === "dead" || (state !== "inflight" && info.dead_letter_for.length > 0);
    $("#messages tbody").replaceChildren(...res.result.map((m) => h("tr", { "data-id": m.id },
      h("td", {}, m.id), h("td", {}, when(m.timestamp_ms)), h("td", { class: "num" }, m.attempts), h("td", {}, when(m.visible_at_ms)),
      h("td", {}, m.encoding === "base64" ? `(${m.content_type}, ${m.size} bytes)` : short(m.body, 160)),
      h("td", {}, movable ? h("button", { type: "button", onclick: () => moveBack(m.id) },
        info.dead_letter_for.length ? `Move back to ${info.dead_letter_for[0]}` : "Move back") : ""))));
    $("#messages-count").textContent = `${res.result_info.total_count} message(s)`;
    const next = res.result_info.cursor;
    $("#messages-next").disabled = !next;
    $("#messages-next").onclick = () => page(next);
  }
  async function moveBack(id) {
    const res = await act(() => api("POST", `/queues/${enc(current)}/messages/${enc(id)}/move`, { json: {} }));
    if (res) { say(`moved ${id} back to ${res.result.queue}`, "info"); await list(); await page(""); }
  }
  async function select(name) {
    current = name; state = ""; setParams({ queue: name, state: "" });
    $("#queue").hidden = false;
    $("#queue-title").textContent = `Queue ${name}`;
    for (const tr of document.querySelectorAll("#queues tbody tr")) tr.classList.toggle("selected", tr.dataset.queue === name);
    $("#purge-confirm").hidden = true;
    tabs(); await page("");
  }
  $("#messages-first").addEventListener("click", () => page(""));
  $("#queue-send").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const type = $("#send-type").value;
    const res = await act(async () => {
      const raw = $("#send-body").value;
      const msg = { body: type === "json" ? parseJson(raw, "the message body") : raw, content_type: type };
      const delay = $("#send-delay").value.trim();
      if (delay) msg.delay_seconds = Number(delay);
      return api("POST", `/queues/${enc(current)}/messages`, { json: msg });
    });
    if (res) { say(`sent message ${res.result.id} to ${current}`, "info"); await list(); await page(""); }
  });
  $("#purge").addEventListener("click", () => {
    const q = summary[current] || {};
    const b = $("#purge-confirm");
    b.textContent = `Really delete the ${q.backlog ?? "?"} waiting and ${q.dead ?? 0} dead message(s) of ${current}?`;
    b.hidden = false;
  });
  $("#purge-confirm").addEventListener("click", async () => {
    $("#purge-confirm").hidden = true;
    const res = await act(() => api("POST", `/queues/${enc(current)}/purge`, { json: {} }));
    if (res) { say(`purged ${res.result.purged} message(s) from ${current}`, "info"); await list(); await page(""); }
  });
  await list();
  if (current) { const s = state; await select(current); if (s) { state = s; tabs(); await page(""); } }
  // live: the counts move while messages are delivered
  setInterval(() => { if (!document.hidden) list(); }, 2000);
}

// -- Workflows -----------------------------------------------------------------------------------

async function workflowsPage() {
  const env = await act(() => api("GET", "/workflows"));
  if (!env) return;
  if (!env.result.length) { say("no workflows: add [[workflows]] to the config", "info"); return; }
  const sel = $("#wf-name");
  options(sel, env.result.map((w) => [w.name, `${w.name} (${w.class_name})`]), params.get("name") || env.result[0].name);
  const statusSel = $("#wf-status");
  $("#wf-id").value = params.get("id") || "";
  let pageNo = Number(params.get("page") || 1);
  async function counts() {
    const res = await act(() => api("GET", `/workflows/${enc(sel.value)}`));
    if (!res) return;
    const keep = statusSel.value || params.get("status") || "";
    options(statusSel, [["", "any"], ...Object.entries(res.result.instances).map(([s, n]) => [s, `${s} (${n})`])], keep);
  }
  async function page() {
    const started = performance.now();
    const q = new URLSearchParams({ page: String(pageNo), per_page: "50" });
    if (statusSel.value) q.set("status", statusSel.value);
    if ($("#wf-id").value) q.set("id", $("#wf-id").value);
    setParams({ name: sel.value, status: statusSel.value, id: $("#wf-id").value, page: pageNo > 1 ? String(pageNo) : "" });
    const res = await act(() => api("GET", `/workflows/${enc(sel.value)}/instances?${q}`));
    if (!res) return;
    $("#instances tbody").replaceChildren(...res.result.map((i) => h("tr", { "data-id": i.id },
      h("td", {}, h("a", { href: `${BASE}/workflows/${enc(sel.value)}/${enc(i.id)}` }, i.id)),
      h("td", {}, h("span", { class: `status ${i.status}` }, i.status)),
      h("td", {}, iso(i.created_on)), h("td", {}, iso(i.started_on)), h("td", {}, iso(i.ended_on)))));
    const info = res.result_info;
    const pages = Math.max(1, Math.ceil(info.total_count / info.per_page));
    $("#wf-page").textContent = `page ${info.page} of ${pages} · ${info.total_count} instance(s)`;
    $("#wf-prev").disabled = pageNo <= 1;
    $("#wf-next").disabled = pageNo >= pages;
    document.body.dataset.rendered = String(performance.now() - started);
    document.body.dataset.firstRender ??= String(performance.now());  // since navigation began
  }
  $("#wf-prev").addEventListener("click", () => { pageNo -= 1; page(); });
  $("#wf-next").addEventListener("click", () => { pageNo += 1; page(); });
  $("#wf-filter").addEventListener("submit", (ev) => { ev.preventDefault(); pageNo = 1; page(); });
  statusSel.addEventListener("change", () => { pageNo = 1; page(); });
  sel.addEventListener("change", async () => { pageNo = 1; statusSel.value = ""; await counts(); page(); });
  $("#wf-create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = await act(async () => {
      const body = { params: parseJson($("#create-params").value || "null", "the params") };
      if ($("#create-id").value) body.instance_id = $("#create-id").value;
      return api("POST", `/workflows/${enc(sel.value)}/instances`, { json: body });
    });
    if (res) location.href = `${BASE}/workflows/${enc(sel.value)}/${enc(res.result.id)}`;
  });
  await counts();
  await page();
}

// -- one instance: actions and the timeline ------------------------------------------------------

const FINISHED = new Set(["complete", "errored", "terminated"]);

async function instancePage() {
  const wf = document.body.dataset.workflow;
  const id = document.body.dataset.instance;
  const path = `/workflows/${enc(wf)}/instances/${enc(id)}`;
  let data = null;
  let selected = null;
  let timer = null;
  async function load() {
    const started = performance.now();
    let res;
    try { res = await api("GET", path); } catch (err) { say(err.message); return false; }
    data = res.result;
    render();
    document.body.dataset.rendered = String(performance.now() - started);
    document.body.dataset.firstRender ??= String(performance.now());  // since navigation began
    return true;
  }
  function render() {
    const st = $("#inst-status");
    st.textContent = data.status; st.className = `status ${data.status}`;
    $("#inst-times").textContent = `queued ${iso(data.queued)} · started ${iso(data.start) || "-"} · ended ${iso(data.end) || "-"} · ${data.steps.length} step(s)`;
    $("#inst-params").textContent = show(data.params);
    $("#inst-output").textContent = show(data.output);
    $("#inst-error").textContent = data.error ? `${data.error.name}: ${data.error.message}` : "none";
    $("#waiting-for").textContent = data.waiting_for && data.waiting_for.length ? `waiting for: ${data.waiting_for.join(", ")}` : "";
    if (data.waiting_for && data.waiting_for.length && !$("#event-type").value) $("#event-type").value = data.waiting_for[0];
    const sel = $("#restart-from");
    const names = [...new Set(data.steps.filter((s) => s.type === "step").map((s) => s.name))];
    if (sel.options.length !== names.length + 1) {
      options(sel, [["", "the top"], ...names.map((n) => [n, n])], sel.value);
    }
    for (const b of document.querySelectorAll("[data-action]")) {
      const a = b.dataset.action;
      b.disabled = (a === "pause" && (FINISHED.has(data.status) || data.status === "paused"))
        || (a === "resume" && data.status !== "paused" && data.status !== "waitingForPause")
        || (a === "terminate" && FINISHED.has(data.status));
    }
    $("#timeline").replaceChildren();
    $("#timeline").innerHTML = timelineSvg(data, selected);
    if (selected !== null) detail(selected);
  }
  function detail(index) {
    selected = index;
    const s = data.steps[index];
    for (const g of document.querySelectorAll("#timeline .row")) g.classList.toggle("sel", Number(g.dataset.index) === index);
    if (!s) return;
    const box = $("#step-detail");
    box.className = "";
    const parts = [h("h3", {}, `${s.type} ${s.name ?? ""}${s.count > 1 ? " #" + s.count : ""}`),
      h("p", { class: "muted" }, `${iso(s.start)} → ${iso(s.end) || "not finished"}${s.until ? " · until " + iso(s.until) : ""}${s.timeout_at ? " · times out " + iso(s.timeout_at) : ""}${s.next_attempt ? " · next attempt " + iso(s.next_attempt) : ""}`)];
    if (s.config) parts.push(h("h3", {}, "Config"), h("pre", { class: "json" }, show(s.config)));
    parts.push(h("h3", {}, "Input"), h("pre", { class: "json" }, show(data.params)));
    for (const [i, a] of (s.attempts || []).entries()) {
      parts.push(h("div", { class: `attempt ${a.success ? "" : "failed"}` },
        h("strong", {}, `Attempt ${i + 1}: ${a.success ? "ok" : a.end ? "failed" : "running"}`), " ",
        h("span", { class: "muted" }, `${iso(a.start)} → ${iso(a.end)}`),
        a.error ? h("pre", { class: "json" }, `${a.error.name}: ${a.error.message}`) : null,
        a.success ? h("pre", { class: "json" }, show(s.output)) : null));
    }
    if (!(s.attempts || []).length && s.output !== undefined && s.output !== null) parts.push(h("h3", {}, "Output"), h("pre", { class: "json" }, show(s.output)));
    if (s.error) parts.push(h("h3", {}, "Error"), h("pre", { class: "json" }, `${s.error.name}: ${s.error.message}`));
    box.replaceChildren(...parts);
  }
  $("#timeline").addEventListener("click", (ev) => {
    const g = ev.target.closest(".row");
    if (g) detail(Number(g.dataset.index));
  });
  async function change(action) {
    const body = { status: action };
    if (action === "restart" && $("#restart-from").value) body.from_step = $("#restart-from").value;
    const res = await act(() => api("PATCH", `${path}/status`, { json: body }));
    if (res) { say(`${action}: the instance is now ${res.result.status}`, "info"); await load(); live(); }
  }
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => change(b.dataset.action));
  $("#inst-delete").addEventListener("click", async () => {
    const res = await act(() => api("DELETE", path));
    if (res) location.href = `${BASE}/workflows?name=${enc(wf)}`;
  });
  $("#send-event").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const type = $("#event-type").value;
    const res = await act(async () => {
      const payload = parseJson($("#event-payload").value || "null", "the event payload");
      return api("POST", `${path}/events/${enc(type)}`, { json: payload });
    });
    if (res) { say(`sent event ${type}`, "info"); await load(); live(); }
  });
  /** Live updates from the instance's subscription stream (Server-Sent Events): each event
   *  reloads the instance, at most every 150 ms. Polling is only the fallback for a stream
   *  that is refused or breaks; both stop once the instance is finished. */
  let stream = null;
  let pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(async () => { pending = null; await load(); live(); }, 150);
  }
  function poll() {
    clearTimeout(timer);
    timer = setTimeout(async () => { if (!document.hidden) await load(); live(); }, 700);
  }
  function live() {
    const over = !data || FINISHED.has(data.status);
    if (over) {
      clearTimeout(timer);
      if (stream) { stream.abort(); stream = null; }
      return;
    }
    if (stream) return;
    const ctl = stream = new AbortController();
    (async () => {
      try {
        const res = await fetch(`${API}${path}/subscribe`, { signal: ctl.signal });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.getReader();
        const text = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (text.decode(value, { stream: true }).includes("event:")) refresh();
        }
      } catch (_) {
        if (ctl.signal.aborted) return;
      }
      if (stream === ctl) { stream = null; poll(); }
    })();
  }
  if (await load()) live();
}

/** The SVG timeline: a row per step, bars on one time axis. Built as one string (fast for
 *  thousands of steps); every text is escaped. */
function timelineSvg(inst, selected) {
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const t = (s) => (s ? Date.parse(s) : null);
  const steps = inst.steps.filter((s) => s.type !== "termination");
  const now = Date.now();
  let lo = t(inst.start) ?? t(inst.queued) ?? now;
  let hi = t(inst.end) ?? now;
  // The axis ends at the instance's end, or now while it runs: a pending sleep or wait runs to
  // the edge (its deadline is in its tooltip) instead of squashing the past into a sliver.
  for (const s of steps) {
    const a = t(s.start); const b = t(s.end) ?? (t(s.next_attempt) !== null && t(s.next_attempt) - now < 6e4 ? t(s.next_attempt) : null);
    if (a !== null) { lo = Math.min(lo, a); hi = Math.max(hi, a); }
    if (b !== null) hi = Math.max(hi, b);
  }
  if (hi - lo < 1) hi = lo + 1;
  const LABEL = 220; const W = Math.max(600, (document.querySelector("#timeline").clientWidth || 900) - 4);
  const plot = W - LABEL - 20; const ROW = 20; const TOP = 26;
  const x = (ms) => LABEL + ((Math.min(ms, hi) - lo) / (hi - lo)) * plot;
  const H = TOP + steps.length * ROW + 10;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="timeline of ${esc(inst.id)}">`];
  // axis with about 6 ticks
  const span = hi - lo;
  const unit = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 216e5, 864e5, 6048e5]
    .find((u) => span / u <= 8) || 6048e5;
  const fmt = (ms) => (ms < 1e3 ? `${ms} ms` : ms < 6e4 ? `${+(ms / 1e3).toFixed(2)} s` : ms < 36e5 ? `${+(ms / 6e4).toFixed(1)} min` : ms < 864e5 ? `${+(ms / 36e5).toFixed(1)} h` : `${+(ms / 864e5).toFixed(1)} d`);
  for (let v = 0; v <= span; v += unit) {
    out.push(`<line class="axis" x1="${x(lo + v)}" x2="${x(lo + v)}" y1="${TOP - 6}" y2="${H}"/><text class="tick" x="${x(lo + v) + 2}" y="12">+${fmt(v)}</text>`);
  }
  if (!FINISHED.has(inst.status)) out.push(`<line class="now" x1="${x(now)}" x2="${x(now)}" y1="${TOP - 6}" y2="${H}"/>`);
  const bar = (cls, a, b, y, title) => {
    const x1 = x(a); const w = Math.max(2, x(b) - x1);
    return `<rect class="${cls}" x="${x1}" y="${y + 4}" width="${w}" height="${ROW - 8}" rx="2"><title>${esc(title)}</title></rect>`;
  };
  steps.forEach((s, i) => {
    const y = TOP + i * ROW;
    const name = `${s.name ?? s.type}${s.count > 1 ? " #" + s.count : ""}`;
    out.push(`<g class="row ${i === selected ? "sel" : ""}" data-index="${inst.steps.indexOf(s)}" data-type="${esc(s.type)}" data-name="${esc(s.name ?? "")}" data-state="${s.finished ? (s.success ? "ok" : "failed") : "open"}">`,
      `<rect class="bg" x="0" y="${y}" width="${W}" height="${ROW}" fill="transparent"/>`,
      `<text class="lbl" x="6" y="${y + 14}">${esc(name.length > 32 ? name.slice(0, 31) + "…" : name)}</text>`);
    const a = t(s.start) ?? lo;
    const e = t(s.end);
    if (s.type === "sleep") {
      out.push(bar(`sleep${e ? "" : " pending"}`, a, e ?? t(s.until) ?? now, y, `sleep ${name} until ${iso(s.until)}`));
    } else if (s.type === "waitForEvent") {
      out.push(bar(`wait${e ? "" : " pending"}`, a, e ?? t(s.timeout_at) ?? now, y, `wait for event: ${name}${e ? "" : " (waiting; times out " + iso(s.timeout_at) + ")"}`));
    } else if (s.type === "rollback" || String(s.type).startsWith("rollback")) {
      out.push(bar("rollback", a, e ?? now, y, `rollback of ${name}`));
    } else {
      const attempts = s.attempts || [];
      let prevEnd = null;
      attempts.forEach((at, k) => {
        const as = t(at.start); const ae = t(at.end) ?? now;
        if (prevEnd !== null && as > prevEnd) out.push(`<line class="gap" x1="${x(prevEnd)}" x2="${x(as)}" y1="${y + ROW / 2}" y2="${y + ROW / 2}"/>`);
        out.push(bar(at.success ? "ok" : at.end ? "fail" : "run", as, ae, y,
          `${name} attempt ${k + 1}: ${at.success ? "ok" : at.error ? at.error.name + ": " + at.error.message : "running"}`));
        prevEnd = ae;
      });
      if (!s.finished) {
        const from = prevEnd ?? a;
        const next = t(s.next_attempt);
        if (next !== null && next > from) {
          out.push(`<line class="gap" x1="${x(from)}" x2="${x(next)}" y1="${y + ROW / 2}" y2="${y + ROW / 2}"/>`);
        } else if (!attempts.length || attempts[attempts.length - 1].end) {
          out.push(bar("run", from, Math.max(from + 1, now), y, `${name}: running`));
        }
      }
    }
    out.push("</g>");
  });
  out.push("</svg>");
  return out.join("");
}

// -- start -----------------------------------------------------------------------------------------

const PAGES = { workers: workersPage, kv: kvPage, d1: d1Page, r2: r2Page, "durable-objects": doPage,
  queues: queuesPage, workflows: document.body.dataset.instance ? instancePage : workflowsPage };
if (PAGES[SECTION]) PAGES[SECTION]();
