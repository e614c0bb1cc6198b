// The runs dashboard: the runs table (#/runs) and one run's page (#/runs/<name>) with its curves, expert load,
// ledger, evaluation results, scoreboard and model card. Both poll the server, so a run that trains updates live;
// asking with `since=<version>` makes an unchanged metrics file cost one stat() on the server.

import { el, formatAge, formatNumber, getJSON, reportError } from "./api.js";
import { heatmap, lineChart } from "./charts.js";
import { renderMarkdown } from "./markdown.js";

const LIST_EVERY_MS = 10000;
const RUN_EVERY_MS = 3000;
const $ = (id) => document.getElementById(id);

let generation = 0;  // bumped on every navigation: a poll loop of a page no longer shown stops itself
let timer = null;
let run = null;  // the run page's state

export function stopDashboard() {
  generation += 1;
  clearTimeout(timer);
  timer = null;
  run = null;
}

function every(ms, fn) {
  const mine = generation;
  const loop = async () => {
    if (mine !== generation) return;
    if (!document.hidden) await fn();
    if (mine === generation) timer = setTimeout(loop, ms);
  };
  timer = setTimeout(loop, ms);
}

function badge(status, reason = null) {
  const kind = { running: "live", finished: "good", failed: "bad", stopped: "muted", empty: "muted" }[status] || "muted";
  return el("span", { class: `badge ${kind}`, "data-status": status, title: reason }, status);
}

function cost(value, deviceHours, priced) {
  if (value === null || value === undefined) return "—";
  const hours = deviceHours ? ` (${formatNumber(deviceHours, 3)} device-h)` : "";
  return (priced || value ? value.toFixed(2) : "no price") + hours;
}

export function formatParams(n) {
  if (n === null || n === undefined) return "—";
  for (const [unit, size] of [["B", 1e9], ["M", 1e6], ["K", 1e3]]) if (n >= size) return `${(n / size).toFixed(1)}${unit}`;
  return String(n);
}

// -- the runs table ------------------------------------------------------------------------------------------------
export async function showRunsList() {
  stopDashboard();
  $("runs-list").hidden = false;
  $("run-detail").hidden = true;
  await refreshList();
  every(LIST_EVERY_MS, refreshList);
}

async function refreshList() {
  let data;
  try {
    data = await getJSON("api/runs");
  } catch (err) {
    $("runs-where").textContent = reportError(err);
    return;
  }
  $("runs-where").textContent = `From ${data.runs_dir}; updates every ${LIST_EVERY_MS / 1000} s.`;
  $("runs-empty").hidden = data.runs.length > 0;
  $("runs-table").querySelector("tbody").replaceChildren(...data.runs.map((r) => {
    const stage = r.stages.find((s) => s.name === r.stage) || {};
    const best = Object.entries(r.best || {}).map(([task, b]) => el("div", {}, el("code", {}, task),
      ` ${formatNumber(b.value, 3)} (${b.stage})`));
    return el("tr", { "data-run": r.name },
      el("th", { scope: "row" }, el("a", { href: `#/runs/${encodeURIComponent(r.name)}` }, r.name)),
      el("td", {}, r.stage || "—"),
      el("td", {}, badge(r.status, r.reason), r.reason ? el("div", { class: "muted" }, r.reason) : ""),
      el("td", { class: "num" }, formatNumber(stage.last_step)), el("td", { class: "num" }, formatNumber(stage.loss)),
      el("td", {}, best.length ? best : "—"),
      el("td", { class: "num" }, formatNumber(r.tokens)), el("td", { class: "num" }, cost(r.cost, r.device_hours, r.priced)),
      el("td", {}, formatAge(r.updated)));
  }));
}

// -- one run -------------------------------------------------------------------------------------------------------
export async function showRun(name) {
  stopDashboard();
  $("runs-list").hidden = true;
  const page = $("run-detail");
  page.hidden = false;
  page.replaceChildren(el("p", { class: "muted" }, `Loading ${name}…`));
  run = { name, stage: null, version: null, metrics: null, heatAt: null, other: null, shown: {} };
  const mine = generation;
  try {
    run.detail = await getJSON(`api/runs/${encodeURIComponent(name)}`);
  } catch (err) {
    page.replaceChildren(backLink(), el("p", { class: "error" }, reportError(err)));
    return;
  }
  if (mine !== generation) return;
  run.stage = run.detail.stage;
  page.replaceChildren(backLink(),
    el("div", { class: "run-head" }, el("h1", { id: "run-title" }, name), el("span", { id: "run-status" })),
    el("div", { id: "run-problems" }),
    el("div", { id: "stage-picker", class: "stage-picker", role: "group", "aria-label": "Stage" }),
    el("section", { "aria-labelledby": "curves-title" }, el("h2", { id: "curves-title" }, "Training curves"),
      el("div", { id: "charts", class: "charts" })),
    el("section", { "aria-labelledby": "heat-title" }, el("h2", { id: "heat-title" }, "Expert load"),
      el("div", { id: "heat" })),
    el("section", { "aria-labelledby": "ledger-title" }, el("h2", { id: "ledger-title" }, "Cost ledger"),
      el("div", { id: "ledger" })),
    el("section", { "aria-labelledby": "eval-title" }, el("h2", { id: "eval-title" }, "Evaluation results"),
      el("div", { id: "results" })),
    el("section", { "aria-labelledby": "board-title" }, el("h2", { id: "board-title" }, "Scoreboard"),
      el("div", { id: "scoreboard" })),
    el("section", { "aria-labelledby": "card-title" }, el("h2", { id: "card-title" }, "Model card"),
      el("div", { id: "model-card" })));
  renderDetail();
  await loadMetrics();
  every(RUN_EVERY_MS, poll);
}

function backLink() {
  return el("p", {}, el("a", { href: "#/runs" }, "← All runs"));
}

async function poll() {
  const changed = await loadMetrics();
  if (changed && run) {
    try {
      run.detail = await getJSON(`api/runs/${encodeURIComponent(run.name)}`);
      renderDetail();
    } catch (err) {
      reportError(err);
    }
  }
}

/** Fetch the selected stage's metrics unless unchanged; true when something new was drawn. */
async function loadMetrics() {
  if (!run || !run.stage) {
    if (run) renderCharts();
    return false;
  }
  const mine = generation;
  const since = run.version ? `&since=${encodeURIComponent(run.version)}` : "";
  let data;
  try {
    data = await getJSON(`api/runs/${encodeURIComponent(run.name)}/metrics?stage=${encodeURIComponent(run.stage)}${since}`);
  } catch (err) {
    reportError(err);
    return false;
  }
  if (mine !== generation || !run || data.unchanged) return false;
  run.metrics = data;
  run.version = data.version;
  renderCharts();
  return true;
}

/** Replace a section's content only when what it shows changed (keeps focus and scroll while polling). */
function setSection(id, key, build) {
  const sig = JSON.stringify(key);
  if (run.shown[id] === sig) return;
  run.shown[id] = sig;
  $(id).replaceChildren(...[build()].flat());
}

function renderDetail() {
  const d = run.detail;
  const stage = d.stages.find((s) => s.name === run.stage);
  $("run-status").replaceChildren(...(stage ? [badge(stage.status, stage.reason),
    ` ${stage.name}, step ${formatNumber(stage.last_step)}`, stage.reason ? ` (${stage.reason})` : "",
    stage.status === "running" ? ` · updates every ${RUN_EVERY_MS / 1000} s` : ""] : [badge(d.status)]));
  setSection("stage-picker", [d.stages.map((s) => s.name), run.stage], () => [
    el("span", { class: "muted" }, "Stage:"),
    ...d.stages.map((s) => el("button", { type: "button", "aria-pressed": String(s.name === run.stage),
      onclick: () => selectStage(s.name) }, s.name))]);
  setSection("run-problems", d.errors, () => (d.errors || []).length ? el("div", { class: "notice", role: "status" },
    "Files of this run that could not be read (what they hold is missing below):",
    el("ul", {}, ...d.errors.map((e) => el("li", {}, e)))) : []);
  setSection("ledger", d.ledger, () => ledgerTable(d.ledger));
  setSection("results", d.results, () => resultsTable(d.results));
  setSection("scoreboard", d.scoreboard, () => scoreboardTable(d.scoreboard));
  setSection("model-card", d.model_cards, () => modelCards(d.model_cards));
}

async function selectStage(name) {
  if (!run || run.stage === name) return;
  Object.assign(run, { stage: name, version: null, metrics: null, heatAt: null });
  renderDetail();
  await loadMetrics();
}

// -- curves and expert load ----------------------------------------------------------------------------------------
const PRIMARY = ["loss", "val_loss", "lr", "tokens_per_s", "expert_load_imbalance"];

function renderCharts() {
  const m = run.metrics;
  const focused = document.activeElement && document.activeElement.closest("#charts, #heat") ? document.activeElement.id : null;
  if (!m) {
    $("charts").replaceChildren(el("p", { class: "muted" }, run.stage ? "Loading curves…" : "This run has no stages yet."));
    $("heat").replaceChildren();
    return;
  }
  const xs = m.steps;
  const s = (name, label, dashed = false) => ({ name, label, xs, ys: m.series[name] || [], dashed });
  const others = Object.keys(m.series).filter((k) => !PRIMARY.includes(k));
  if (!run.other || !others.includes(run.other)) {
    run.other = others.find((k) => k.startsWith("reward/")) || (others.includes("grad_norm") ? "grad_norm" : others[0]);
  }
  const select = others.length ? el("select", { id: "other-metric", "aria-label": "Metric to plot",
    onchange: (e) => { run.other = e.target.value; renderCharts(); } },
  others.map((k) => el("option", { value: k, selected: k === run.other }, k))) : null;
  const note = m.thinned ? ` (${xs.length} of ${m.records} records)` : "";
  $("charts").replaceChildren(
    lineChart({ id: "chart-loss", title: `Loss${note}`, series: [s("loss", "train loss"), s("val_loss", "val loss", true)] }),
    lineChart({ id: "chart-lr", title: "Learning rate", series: [s("lr", "lr")] }),
    lineChart({ id: "chart-throughput", title: "Throughput (tokens/s)", series: [s("tokens_per_s", "tokens/s")] }),
    lineChart({ id: "chart-other", title: "More:", controls: select,
      series: run.other ? [s(run.other, run.other)] : [] }));
  renderHeat(m);
  if (focused && $(focused)) $(focused).focus();
}

function renderHeat(m) {
  const snaps = m.expert_load;
  if (!snaps.steps.length) {
    $("heat").replaceChildren(el("p", { class: "muted" }, "No expert load logged for this stage (a dense model, or nothing yet)."));
    return;
  }
  const lastIndex = snaps.steps.length - 1;
  const following = run.heatAt === null || run.heatAt >= lastIndex;
  const at = following ? lastIndex : run.heatAt;
  const slider = el("input", { id: "heat-step", type: "range", min: 0, max: lastIndex, value: at, step: 1,
    "aria-valuetext": `step ${snaps.steps[at]}` });
  const label = el("span", { id: "heat-step-label" }, `step ${formatNumber(snaps.steps[at])}${following ? " (latest)" : ""}`);
  slider.addEventListener("input", () => {
    const i = Number(slider.value);
    run.heatAt = i >= lastIndex ? null : i;
    slider.setAttribute("aria-valuetext", `step ${snaps.steps[i]}`);
    label.textContent = `step ${formatNumber(snaps.steps[i])}${i >= lastIndex ? " (latest)" : ""}`;
    $("heat-map").replaceWith(heatmap({ id: "heat-map", loads: snaps.loads[i], step: snaps.steps[i] }));
  });
  const imbalance = m.series.expert_load_imbalance;
  const lastImb = imbalance ? imbalance.filter((v) => v !== null).pop() : undefined;
  $("heat").replaceChildren(
    el("div", { class: "heat-controls" }, el("label", { for: "heat-step" }, "Step"), slider, label,
      lastImb !== undefined ? el("span", { class: "muted" }, `latest max/mean load: ${formatNumber(lastImb, 3)}`) : ""),
    heatmap({ id: "heat-map", loads: snaps.loads[at], step: snaps.steps[at] }));
}

// -- tables --------------------------------------------------------------------------------------------------------
/** A table in a box that scrolls sideways when it is wider than the screen (a scoreboard with many tasks). */
function table(id, head, rows, numeric = () => false) {
  return el("div", { class: "table-scroll" }, el("table", { class: "data", id },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: numeric(i) ? "num" : null }, h)))),
    el("tbody", {}, rows)));
}

function ledgerTable(ledger) {
  if (!ledger || !ledger.stages) return el("p", { class: "muted" }, "No ledger.json in this run.");
  const head = ["stage", "device", "tokens", "FLOPs", "wall time", "device-hours", "MFU", "cost", "energy", "resumes"];
  const row = (s, cls = null) => el("tr", { class: cls }, [
    s.stage, s.device ? (s.n_devices > 1 ? `${s.n_devices} × ${s.device}` : s.device) : "",
    formatNumber(s.tokens), s.flops ? s.flops.toExponential(2) : "—", `${formatNumber(Math.round(s.wall_seconds))} s`,
    formatNumber(s.device_hours, 3), s.mfu !== undefined && s.mfu !== null ? `${(s.mfu * 100).toFixed(1)}%` : "-",
    s.price_per_device_hour === 0 ? "no price" : formatNumber(s.cost, 4), `${formatNumber(s.energy_kwh, 3)} kWh`,
    s.resumes ?? "",
  ].map((v, i) => (i < 2 ? el("td", {}, v) : el("td", { class: "num" }, v))));
  const t = ledger.totals || {};
  const totals = row({ stage: "total", ...t, price_per_device_hour: t.cost ? 1 : 0 }, "total");
  return table("ledger-table", head, [...ledger.stages.map((s) => row(s)), totals], (i) => i >= 2);
}

function resultsTable(results) {
  if (!results.length) {
    return el("p", { class: "muted" }, "No evaluation results yet: ",
      el("code", {}, "fronde eval runs/<name>/<stage>/model --task arithmetic:1"), " writes them to the run's eval/ dir.");
  }
  const how = (s) => ["shots", "samples", "temperature", "seed"].filter((k) => k in s).map((k) => `${k} ${s[k]}`).join(", ");
  return table("results-table", ["model", "task", "score", "examples", "settings", "tokens/s"],
    results.map((r) => el("tr", {}, el("td", {}, r.model), el("td", {}, el("code", {}, r.task)),
      el("td", { class: "num" }, `${r.score.metric} ${formatNumber(r.score.value, 3)}`), el("td", { class: "num" }, formatNumber(r.examples)),
      el("td", {}, how(r.settings || {})), el("td", { class: "num" }, formatNumber(r.speed && r.speed.tokens_per_s, 3)))),
    (i) => i === 2 || i === 3 || i === 5);
}

function scoreboardTable(board) {
  if (!board) return el("p", { class: "muted" }, "Appears once this run has evaluation results; add reference models with ",
    el("code", {}, "--against smollm2-135m-instruct"), ".");
  const head = ["model", "total params", "active params", "training cost", "tokens/s", ...board.tasks, "mean"];
  const rows = board.models.map((m) => el("tr", { class: m.this_run ? "this-run" : null },
    el("th", { scope: "row" }, m.name, m.this_run ? el("span", { class: "muted" }, " (this run)") : ""),
    ...[formatParams(m.total_params), formatParams(m.active_params), cost(m.training_cost, m.device_hours, m.training_cost > 0),
      formatNumber(m.tokens_per_s, 3), ...board.tasks.map((t) => formatNumber(m.scores[t], 3)), formatNumber(m.mean, 3)]
      .map((v) => el("td", { class: "num" }, v))));
  const notes = [...board.notes, ...board.models.filter((m) => m.cost_note).map((m) => `training cost of ${m.name}: ${m.cost_note}`)];
  return [table("scoreboard-table", head, rows, (i) => i > 0),
    notes.length ? el("ul", { class: "notes" }, notes.map((n) => el("li", {}, n))) : ""];
}

function modelCards(cards) {
  const stages = Object.keys(cards || {});
  if (!stages.length) return el("p", { class: "muted" }, "No MODEL_CARD.md in this run's model directories.");
  return stages.map((s) => el("article", { class: "card", "aria-label": `Model card of ${s}/model`, "data-stage": s },
    el("p", { class: "muted" }, `${s}/model/MODEL_CARD.md`), renderMarkdown(cards[s])));
}
