// The dashboard: polls /dashboard/data (the same numbers as /health, plus the latest
// requests and the usage ledger) and draws it. No libraries; the chart is plain SVG.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#c96442", "#3b6ea5", "#2f7d4f", "#8e5ea2", "#b7791f", "#4a8f8f", "#7a7a74"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
const SVG_TAGS = new Set(["svg", "path", "circle", "rect", "text", "g", "line", "title"]);

const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const secs = (s) => (s === null || s === undefined ? "–" : `${Number(s).toFixed(3)} s`);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  if (seconds < 90) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 90) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function setText(id, value) { $(id).textContent = value; }

function row(cells, className = "") {
  const tr = el("tr", className ? { class: className } : {});
  for (const cell of cells) {
    const [text, cls] = Array.isArray(cell) ? cell : [cell, ""];
    tr.append(el("td", cls ? { class: cls } : {}, text));
  }
  return tr;
}

// A table body's rows, or one row saying the table is empty (headers alone say nothing).
function fillTable(id, rows, emptyText) {
  const columns = $(id).tHead.rows[0].cells.length;
  $(id).tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", { class: "empty" }, el("td", { colspan: columns, class: "empty", id: `${id}-empty` }, emptyText))]));
}

// A window's state now: its reading's status, or "reset_passed" once the reset is behind us
// (the server decides; "passed" reads the same in the gauges, the overall line and the badge).
const stateText = (state) => (state === "reset_passed" ? "reset passed, no newer reading" : state || "");

function gauge(name, window) {
  // A half-circle gauge: the arc's length is the fraction used.
  const fraction = Math.max(0, Math.min(1, window.utilization ?? 0));
  const r = 60, cx = 80, cy = 75;
  const angle = Math.PI * (1 - fraction);
  const x = cx + r * Math.cos(angle), y = cy - r * Math.sin(angle);
  const state = window.state ?? window.status;
  const color = state === "rejected" ? "#c0392b" : state === "reset_passed" ? "#7a7a74" : fraction >= 0.8 ? "#b7791f" : "#2f7d4f";
  const svg = el("svg", { width: 160, height: 90, viewBox: "0 0 160 90" },
    el("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${cx + r} ${cy}`, stroke: "#e2e1dc", "stroke-width": 14, fill: "none" }),
    el("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`, stroke: color, "stroke-width": 14, fill: "none" }),
    el("text", { x: cx, y: cy - 6, "text-anchor": "middle", class: "percent", style: "font-size:20px;fill:#1d1d1b", id: `window-${name}-percent` },
      window.percent === null ? "?" : `${window.percent}%`));
  let reset = "no reset time reported";
  if (window.resets_at_iso) {
    reset = window.reset_passed ? `reset at ${window.resets_at_iso} (passed)` : `resets ${window.resets_at_iso} (in ${duration(window.resets_in_seconds)})`;
  }
  return el("div", { class: `gauge ${state || ""}`, id: `window-${name}` },
    svg,
    el("div", { class: "label" }, window.label),
    el("div", { class: "reset", id: `window-${name}-reset` }, reset),
    el("div", { class: "reset", id: `window-${name}-status` }, stateText(state)));
}

function drawWindows(subscription) {
  const windows = subscription.windows || {};
  const names = Object.keys(windows);
  if (!names.length) return;
  $("windows").replaceChildren(...names.map((name) => gauge(name, windows[name])));
  const age = subscription.age_seconds;
  const state = subscription.state ?? subscription.status;
  const limited = state === "rejected" || state === "allowed_warning";
  $("windows-note").textContent = `overall: ${stateText(state) || "?"}` +
    (subscription.limiting && limited ? `, limited by the ${windows[subscription.limiting]?.label || subscription.limiting} window` : "") +
    (age !== null && age !== undefined ? ` · last reading ${duration(age)} ago` : "");
}

function windowsText(subscription) {
  // One line per account: each window's use and reset ("5-hour 42% (resets in 2 h)").
  const windows = Object.values((subscription || {}).windows || {});
  if (!windows.length) return "no reading yet";
  return windows.map((w) => `${w.label} ${w.percent === null ? "?" : `${w.percent}%`}` +
    (w.state === "rejected" ? " (refusing)" : w.reset_passed ? " (reset passed)" : "") +
    (w.resets_in_seconds && !w.reset_passed ? `, resets in ${duration(w.resets_in_seconds)}` : "")).join(" · ");
}

function drawAccounts(accounts, failovers) {
  setText("failovers", failovers ? `(${failovers} failover${failovers === 1 ? "" : "s"} since start)` : "");
  fillTable("accounts", Object.entries(accounts).map(([name, a]) =>
    row([name, a.login, a.state + (a.failure ? `: ${a.failure}` : ""), [a.available_in_s ? duration(a.available_in_s) : "now", "num"],
      [num(a.turns), "num"], [num(a.failovers_from), "num"], extraUsageText(a), windowsText(a.subscription)],
    a.state === "ok" ? "" : "failed")),
  "No account.");
}

function extraUsageText(a) {
  // The account's option, whether its windows say turns are billed as extra usage now, and
  // the turns the upstream refused as extra usage since start.
  const inUse = (a.subscription || {}).using_overage ? "in use" : "not in use";
  const refused = a.extra_usage_refusals ? `, ${num(a.extra_usage_refusals)} refused` : "";
  return `${a.extra_usage === "allow" ? "allowed" : "refused"} (${inUse}${refused})`;
}

function drawBudgets(rows) {
  const of = (used, limit) => (limit ? `${num(used)} of ${num(limit)}` : "–");
  fillTable("key-budgets", rows.map((b) => {
    const windows = Object.entries(b.windows || {}).map(([name, w]) => `${(w.used * 100).toFixed(1)}% of ${name}`);
    const share = b.window_share ? `${windows.join(", ") || "nothing yet"} (share ${b.window_share * 100}%)` : "–";
    return row([b.key, [of(b.tokens_today, b.tokens_per_day), "num"], [of(b.tokens_this_week, b.tokens_per_week), "num"], share]);
  }), "No key has a budget.");
}

function byGroup(usage, group) {
  // The last 14 days added up per key or account (the rows come per day).
  const totals = new Map();
  for (const u of usage) {
    const t = totals.get(u[group]) || { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0 };
    for (const k of Object.keys(t)) t[k] += u[k] || 0;
    totals.set(u[group], t);
  }
  return [...totals.entries()].sort().map(([name, t]) =>
    row([name, [num(t.requests), "num"], [num(t.errors), "num"], [num(t.input_tokens), "num"], [num(t.output_tokens), "num"]]));
}

function drawPool(pool, processes) {
  for (const key of ["spare", "held", "busy", "starting", "waiting"]) setText(`pool-${key}`, pool[key] ?? 0);
  setText("pool-memory", pool.memory_mb ?? 0);
  fillTable("processes", processes.map((p) =>
    row([p.pid, p.state, p.model, [p.turns, "num"], [`${p.rss_mb} MB`, "num"], [p.age_s === null ? "–" : duration(Math.round(p.age_s)), "num"]])),
  "No CLI process is running.");
}

function drawUsage(usage) {
  fillTable("usage", usage.map((u) =>
    row([u.day, u.model, [num(u.requests), "num"], [num(u.errors), "num"], [num(u.input_tokens), "num"], [num(u.output_tokens), "num"],
      [num(u.cache_read_tokens), "num"], [num(u.cache_write_tokens), "num"]])), "No usage recorded in the last 14 days.");
  const days = [...new Set(usage.map((u) => u.day))].sort();
  const models = [...new Set(usage.map((u) => u.model))].sort();
  if (!days.length) { $("chart").replaceChildren(el("p", { class: "empty" }, "No usage recorded yet.")); return; }
  const totals = days.map((day) => usage.filter((u) => u.day === day).reduce((s, u) => s + u.input_tokens + u.output_tokens, 0));
  const max = Math.max(1, ...totals);
  const width = Math.max(320, days.length * 56 + 60), height = 180, left = 54, bottom = 24, barWidth = 32;
  const svg = el("svg", { width, height, id: "usage-chart", role: "img" });
  for (const t of [0, 0.5, 1]) {
    const y = height - bottom - t * (height - bottom - 10);
    svg.append(el("line", { x1: left, x2: width, y1: y, y2: y, stroke: "#e2e1dc" }),
      el("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, num(Math.round(max * t))));
  }
  days.forEach((day, i) => {
    let y = height - bottom;
    const x = left + 12 + i * 56;
    models.forEach((model, m) => {
      const u = usage.find((r) => r.day === day && r.model === model);
      if (!u) return;
      const value = u.input_tokens + u.output_tokens;
      const h = (value / max) * (height - bottom - 10);
      y -= h;
      svg.append(el("rect", { x, y, width: barWidth, height: Math.max(h, value ? 1 : 0), fill: COLORS[m % COLORS.length],
        "data-day": day, "data-model": model, "data-tokens": value }, el("title", {}, `${day} ${model}: ${num(value)} tokens, ${u.requests} requests`)));
    });
    svg.append(el("text", { x: x + barWidth / 2, y: height - 8, "text-anchor": "middle" }, day.slice(5)));
  });
  const legend = el("div", { class: "legend" }, ...models.map((model, m) =>
    el("span", {}, el("i", { style: `background:${COLORS[m % COLORS.length]}` }), model)));
  $("chart").replaceChildren(svg, legend);
}

function drawRecent(recent) {
  setText("recent-count", `(${recent.length} shown, newest first)`);
  fillTable("recent", recent.map((r) =>
    row([r.time.slice(11, 19), r.api, `${r.method} ${r.path}`, r.model || "–", r.stream === null ? "–" : r.stream ? "yes" : "no",
      r.how || "–", [secs(r.wait_s), "num"], [secs(r.first_token_s), "num"], [secs(r.duration_s), "num"],
      [r.has_usage ? num(r.input_tokens) : "–", "num"], [r.has_usage ? num(r.output_tokens) : "–", "num"],
      r.in_band_error ? `${r.status} (in-band)` : String(r.status)], r.status >= 400 || r.in_band_error ? "failed" : "")),
  "No requests yet.");
}

function drawErrors(errors) {
  // Refused and failed requests, per route: a request for a model nobody serves is not usage.
  fillTable("errors", errors.map((e) =>
    row([e.day, e.api, e.route, [num(e.errors), "num"], Object.entries(e.statuses).map(([s, n]) => `${s} × ${n}`).join(", ")])),
  "No failed requests in the last 14 days.");
}

function drawFeatures(features) {
  $("features").replaceChildren(...Object.entries(features).map(([name, f]) =>
    el("li", { class: f.state === "ok" ? "ok" : f.state === "failed" ? "failed" : "unknown", title: f.detail || "" },
      `${name}: ${f.state}`)));
}

async function refresh() {
  try {
    // location.origin, not a relative URL: a page opened as http://user:key@host/ would hand
    // its credentials to a relative URL, which fetch refuses; the browser's auth cache sends them.
    const response = await fetch(`${location.origin}/dashboard/data`, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const data = await response.json();
    setText("version", data.version);
    setText("cli-version", data.cli_version || "?");
    const badge = $("status");
    badge.textContent = data.status || "?";
    badge.className = `badge ${data.status || ""}`;
    setText("degraded", (data.degraded || []).join("; "));  // why, when degraded
    drawWindows(data.subscription || {});
    drawAccounts(data.accounts || {}, data.failovers || 0);
    drawBudgets(data.key_budgets || []);
    fillTable("usage-key", byGroup(data.usage_by_key || [], "key"), "No usage recorded in the last 14 days.");
    fillTable("usage-account", byGroup(data.usage_by_account || [], "account"), "No usage recorded in the last 14 days.");
    drawPool(data.pool || {}, data.processes || []);
    drawUsage(data.usage || []);
    drawRecent(data.recent || []);
    drawErrors(data.errors || []);
    drawFeatures(data.features || {});
    setText("updated", new Date().toLocaleTimeString());
    setText("error", "");
    document.body.dataset.loaded = "true";
  } catch (error) {
    setText("error", `· cannot read /dashboard/data: ${error.message}`);
  }
}

refresh();
setInterval(refresh, POLL_MS);
