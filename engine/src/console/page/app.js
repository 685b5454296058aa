// The Sluice console: polls the job's REST API every second and draws what it answers.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2d6cdf", "#d64545", "#3a9a5b", "#e0a030", "#8a4fd0", "#1fa3a3", "#b0588f", "#6b7380"];
let selected = null;
let last = {};

async function api(path, method) {
  const response = await fetch("api/" + path, { method: method || "GET", headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(n) {
  if (n === null || n === undefined) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (abs >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (abs >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function percent(share) { return share === null || share === undefined ? "–" : Math.round(share * 100) + "%"; }

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return ms + " ms";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 120) return m + " min " + (s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function clock(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function busyColor(share) {
  const b = Math.max(0, Math.min(1, share || 0));
  return `hsl(${Math.round(130 * (1 - b))}, 62%, ${82 - 14 * b}%)`;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function row(cells, className) {
  const tr = el("tr", className ? { class: className } : {});
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.append(c); else td.textContent = c;
    tr.append(td);
  }
  return tr;
}

function drawJob(job, operators, partitions) {
  document.title = job.name + " · Sluice";
  document.getElementById("job-name").textContent = job.name;
  const state = document.getElementById("job-state");
  state.textContent = job.state + (job.error ? ": " + job.error : "");
  state.className = "badge " + job.state;
  document.getElementById("uptime").textContent = duration(job.uptime_ms);
  document.getElementById("workers").textContent = job.workers;
  document.getElementById("restarts").textContent = job.restarts;
  document.getElementById("watermark").textContent = clock(partitions.job.watermark);
  document.getElementById("gap").textContent = duration(partitions.job.gap_ms);
  const b = operators.busiest;
  document.getElementById("busiest").textContent = b ? `${b.operator} (worker ${b.worker}, ${percent(b.busy)})` : "–";
  const errors = document.getElementById("errors");
  errors.replaceChildren(...(job.errors.length
    ? job.errors.slice().reverse().map((e) => el("li", {}, clock(e.at_ms) + "  " + e.error))
    : [el("li", { class: "none" }, "none")]));
}

// Operators in columns by their distance from a source, edges between them.
function drawGraph(job, operators) {
  const svg = document.getElementById("graph");
  const byName = new Map(operators.operators.map((o) => [o.name, o]));
  const level = new Map();
  const inputs = new Map(job.graph.operators.map((o) => [o.name, []]));
  for (const e of job.graph.edges) inputs.get(e.to).push(e.from);
  for (const o of job.graph.operators) {
    level.set(o.name, Math.max(-1, ...inputs.get(o.name).map((i) => level.get(i) ?? 0)) + 1);
  }
  const columns = [];
  for (const o of job.graph.operators) (columns[level.get(o.name)] ||= []).push(o);
  const W = 176, H = 62, GX = 44, GY = 22;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((o, y) => pos.set(o.name, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY);
  svg.setAttribute("viewBox", `0 0 ${20 + columns.length * (W + GX)} ${height}`);
  svg.style.height = height + "px";
  const parts = [];
  for (const e of job.graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const path = el("svg:path", { class: "edge " + e.kind, d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}` });
    const target = byName.get(e.to);
    if (e.kind === "exchange" && target && target.queue_fill !== null) path.style.stroke = busyColor(target.queue_fill * 1.2);
    path.append(el("svg:title", {}, `${e.from} → ${e.to} (${e.kind})`));
    parts.push(path);
  }
  for (const o of job.graph.operators) {
    const m = byName.get(o.name) || {};
    const { x, y } = pos.get(o.name);
    const rate = emits(o.kind) ? m.records_out_per_sec : m.records_in_per_sec;
    const g = el("svg:g", { class: "node" + (selected === o.name ? " selected" : ""), "data-operator": o.name, transform: `translate(${x},${y})`, tabindex: "0" });
    g.append(el("svg:rect", { width: W, height: H, fill: busyColor(m.busy) }));
    g.append(el("svg:text", { class: "name", x: 8, y: 17 }, o.name));
    g.append(el("svg:text", { x: 8, y: 34 }, `${o.kind} ×${o.parallelism}`));
    g.append(el("svg:text", { class: "rate", x: 8, y: 52, "data-rate": rate ?? 0 }, `${number(rate)} rec/s · busy ${percent(m.busy)}`));
    g.append(el("svg:title", {}, `${o.name}: ${o.output_type}`));
    g.addEventListener("click", () => { selected = o.name; render(); });
    parts.push(g);
  }
  svg.replaceChildren(...parts);
  drawDetails(operators);
}

function drawDetails(operators) {
  const box = document.getElementById("details");
  const o = selected && operators.operators.find((x) => x.name === selected);
  if (!o) { box.hidden = true; return; }
  box.hidden = false;
  const names = new Set();
  for (const w of o.workers) { Object.keys(w.counters).forEach((k) => names.add("c:" + k)); Object.keys(w.gauges).forEach((k) => names.add("g:" + k)); }
  const keys = [...names].sort();
  const table = el("table");
  const head = el("tr");
  for (const h of ["Worker", "In/s", "Out/s", "Busy", ...keys.map((k) => k.slice(2))]) head.append(el("th", {}, h));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  for (const w of o.workers) {
    body.append(row([w.worker, number(w.records_in_per_sec), number(w.records_out_per_sec), percent(w.busy),
      ...keys.map((k) => { const v = k[0] === "c" ? w.counters[k.slice(2)] : w.gauges[k.slice(2)]; return k.endsWith("watermark") ? clock(v) : number(v); })]));
  }
  table.append(body);
  const facts = `${o.kind} · ${number(o.records_in)} in · ${number(o.records_out)} out · late ${o.late_records} · skipped ${o.bad_records_skipped} · dead-lettered ${o.dead_lettered}`
    + (o.state_entries !== null ? ` · state entries ${number(o.state_entries)}` : "")
    + (o.queue_fill !== null ? ` · queue ${percent(o.queue_fill)} full` : "");
  box.replaceChildren(el("h3", { id: "details-name" }, o.name), el("p", {}, facts), table);
}

// Sources and exchanges count what they hand on; other operators what they take.
function emits(kind) { return kind === "source" || kind === "key_by"; }

function drawRates(rates, job) {
  const svg = document.getElementById("rates");
  const ends = new Set(job.graph.operators.filter((o) => o.kind === "source" || o.kind === "sink").map((o) => o.name));
  const shown = rates.series.filter((s) => s.points.length > 1 && ends.has(s.operator));
  const W = 600, H = 160, L = 48, B = 18;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const max = Math.max(1, ...shown.flatMap((s) => s.points.map((p) => p[1])));
  const t0 = Math.min(...shown.flatMap((s) => s.points.map((p) => p[0])));
  const t1 = Math.max(...shown.flatMap((s) => s.points.map((p) => p[0])));
  const sx = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - 8);
  const sy = (v) => H - B - (v / max) * (H - B - 8);
  const parts = [el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }),
    el("svg:text", { class: "axis-label", x: 2, y: 14 }, number(max)), el("svg:text", { class: "axis-label", x: 2, y: H - B }, "0"),
    el("svg:text", { class: "axis-label", x: L, y: H - 2 }, shown.length ? "-" + Math.round((t1 - t0) / 1000) + " s" : ""),
    el("svg:text", { class: "axis-label", x: W - 30, y: H - 2 }, "now")];
  const legend = [];
  shown.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    parts.push(el("svg:polyline", { fill: "none", stroke: color, "stroke-width": 1.8, points: s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") }));
    const item = el("span"); const swatch = el("i"); swatch.style.background = color; item.append(swatch, s.operator); legend.push(item);
  });
  svg.replaceChildren(...parts);
  document.getElementById("rates-legend").replaceChildren(...legend);
}

function drawWorkers(operators) {
  fillRows(document.querySelector("#worker-table tbody"),
    operators.workers.map((w) => row([w.worker, percent(w.busy), percent(w.backpressured), percent(w.idle)])));
}

function drawPartitions(partitions) {
  const held = partitions.job.held_by;
  document.getElementById("held-by").textContent = held
    ? `the job's watermark is held by ${held.source} partition ${held.partition} (worker ${held.worker})`
    : "no partition holds the watermark (all idle)";
  fillRows(document.querySelector("#partitions tbody"), partitions.partitions.map((p) => {
    const holding = held && held.source === p.source && held.partition === p.partition;
    const state = el("span");
    if (p.idle) state.append(el("span", { class: "tag idle" }, "idle"));
    if (p.paused) state.append(el("span", { class: "tag paused" }, "paused"));
    if (holding) state.append(el("span", { class: "tag holding" }, "holds the watermark"));
    if (!p.idle && !p.paused && !holding) state.append("active");
    return row([p.source, p.partition, p.worker, number(p.next_offset), number(p.lag), clock(p.watermark), state, number(p.records)],
      holding ? "holder" : p.idle ? "idle" : "");
  }));
}

function drawCheckpoints(cps) {
  const summary = document.getElementById("checkpoint-summary");
  if (!cps.enabled) { summary.textContent = "checkpoints are off"; }
  else summary.textContent = `every ${duration(cps.interval_ms)}`;
  const list = cps.checkpoints;
  const svg = document.getElementById("checkpoint-timeline");
  const W = 600, H = 90;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const max = Math.max(1, ...list.map((c) => c.duration_ms || 0));
  const bw = Math.max(3, Math.min(20, (W - 10) / Math.max(1, list.length) - 2));
  svg.replaceChildren(...list.map((c, i) => {
    const h = Math.max(2, ((c.duration_ms || 0) / max) * (H - 14));
    const color = c.state === "completed" ? "#3a9a5b" : c.state === "abandoned" ? "#d64545" : "#e0a030";
    const bar = el("svg:rect", { x: 4 + i * (bw + 2), y: H - h, width: bw, height: h, fill: color });
    bar.append(el("svg:title", {}, `#${c.id} ${c.state} ${duration(c.duration_ms)}${c.reason ? " — " + c.reason : ""}`));
    return bar;
  }));
  fillRows(document.querySelector("#checkpoints tbody"), list.slice(-8).reverse().map((c) =>
    row([c.id + (c.savepoints.length ? " (" + c.savepoints.join(", ") + ")" : ""), clock(c.triggered_at_ms), duration(c.acknowledged_ms), duration(c.duration_ms),
      c.bytes === null ? "–" : number(c.bytes) + "B", c.state + (c.reason ? ": " + c.reason : "")])));
  const r = cps.latest_restore;
  document.getElementById("restore").textContent = r ? `Restored checkpoint ${r.checkpoint_id} from ${r.dir} at ${clock(r.at_ms)}` : "";
}

function drawSinks(sinks) {
  const us = (v) => v === undefined ? "–" : v >= 1000 ? (v / 1000).toFixed(1) + " ms" : v + " µs";
  fillRows(document.querySelector("#sinks tbody"), sinks.sinks.map((s) => {
    const st = s.store || {};
    const lat = st.latency || {};
    return row([s.name, number(s.records_in), number(s.records_in_per_sec), number(st.rows_written), number(st.requests_in_flight),
      us(lat.p50_us), us(lat.p99_us), us(lat.p999_us), number(st.retries), number(st.rejected_rows)]);
  }));
}

function render() {
  const { job, operators, partitions, checkpoints, sinks, rates } = last;
  if (!job) return;
  drawJob(job, operators, partitions);
  drawGraph(job, operators);
  drawRates(rates, job);
  drawWorkers(operators);
  drawPartitions(partitions);
  drawCheckpoints(checkpoints);
  drawSinks(sinks);
}

async function refresh() {
  try {
    const [job, operators, partitions, checkpoints, sinks, rates] = await Promise.all(
      ["job", "operators", "partitions", "checkpoints", "sinks", "rates"].map((p) => api(p)));
    last = { job, operators, partitions, checkpoints, sinks, rates };
    render();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the job: " + e.message;
  }
}

function act(button, path, question) {
  document.getElementById(button).addEventListener("click", async () => {
    if (question && !confirm(question)) return;
    const out = document.getElementById("action-result");
    out.textContent = "…";
    try { out.textContent = JSON.stringify(await api(path, "POST")); } catch (e) { out.textContent = e.message; }
  });
}

act("savepoint", "savepoint");
act("stop", "stop", "Stop the job (after a final checkpoint)?");
refresh();
setInterval(refresh, 1000);
