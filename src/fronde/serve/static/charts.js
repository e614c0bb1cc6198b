// SVG charts in plain JS (nothing vendored): line charts for the training curves and a heatmap for expert load.
// Each chart is a focusable <figure>: hover, or focus it and use the arrow keys, to read the values at a step.
// `data-points` on a chart (and on each line) is the number of points it plots.

import { el, formatNumber } from "./api.js";

const W = 560, H = 230, M = { left: 58, right: 14, top: 10, bottom: 30 };
export const COLORS = ["#1f5fbf", "#d1495b", "#2e8b57", "#8e44ad", "#c77c02"];

/** About `count` round tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function domain(values, pad) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) {
    const d = Math.abs(lo) * 0.1 || 1;
    return [lo - d, hi + d];
  }
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

/**
 * A line chart. series: [{name, label, xs, ys, dashed}]; points whose y is null are not plotted (a metric logged
 * at some steps only, like val_loss, is drawn through the steps that have it).
 */
export function lineChart({ id, title, series, yFormat = formatNumber, controls = null }) {
  const lines = series.map((s, i) => {
    const pts = [];
    s.xs.forEach((x, j) => { if (s.ys[j] !== null && s.ys[j] !== undefined) pts.push([x, s.ys[j]]); });
    return { ...s, pts, color: s.color || COLORS[i % COLORS.length] };
  }).filter((s) => s.pts.length);
  const readout = el("span", { class: "readout", "aria-live": "polite" });
  const caption = el("figcaption", {}, el("span", {}, title, controls ? " " : "", controls || ""), readout);
  const figure = el("figure", { class: "chart", id, tabindex: 0, "data-points": lines[0] ? lines[0].pts.length : 0 },
    caption);
  if (!lines.length) {
    figure.setAttribute("aria-label", `${title}: nothing logged yet`);
    figure.append(el("div", { class: "empty" }, "nothing logged yet"));
    return figure;
  }
  const allX = lines.flatMap((s) => s.pts.map((p) => p[0]));
  const allY = lines.flatMap((s) => s.pts.map((p) => p[1]));
  const [x0, x1] = allX.length > 1 ? [Math.min(...allX), Math.max(...allX)] : domain(allX, 0);
  const [y0, y1] = domain(allY, 0.05);
  const sx = (x) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const sy = (y) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);

  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true" });
  for (const t of ticks(y0, y1)) {
    svg.append(el("line", { class: "grid", x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t) }),
      el("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, yFormat(t)));
  }
  for (const t of ticks(x0, x1, 6).filter((t) => Number.isInteger(t) || x1 - x0 < 6)) {
    svg.append(el("text", { x: sx(t), y: H - M.bottom + 16, "text-anchor": "middle" }, formatNumber(t)));
  }
  svg.append(el("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }),
    el("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }),
    el("text", { x: W - M.right, y: H - 4, "text-anchor": "end" }, "step"));
  for (const s of lines) {
    svg.append(el("polyline", {
      points: s.pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dashed ? "5 4" : null,
      "data-series": s.name, "data-points": s.pts.length, "stroke-linejoin": "round",
    }));
    if (s.pts.length <= 40) {
      for (const [x, y] of s.pts) svg.append(el("circle", { cx: sx(x), cy: sy(y), r: 2.6, fill: s.color }));
    }
  }
  const cursor = el("line", { class: "cursor", y1: M.top, y2: H - M.bottom, visibility: "hidden" });
  svg.append(cursor);
  figure.append(svg, el("div", { class: "legend" }, lines.map((s) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = s.color;
    return el("span", {}, swatch, s.label || s.name);
  })));

  const last = (s) => s.pts[s.pts.length - 1];
  figure.setAttribute("aria-label", `${title}: ` + lines.map((s) =>
    `${s.label || s.name} ${yFormat(s.pts[0][1])} at step ${s.pts[0][0]} to ${yFormat(last(s)[1])} at step ${last(s)[0]}`)
    .join("; ") + ". Use the arrow keys to read values.");

  const steps = [...new Set(allX)].sort((a, b) => a - b);
  let index = -1;
  const show = (i) => {
    index = Math.max(0, Math.min(steps.length - 1, i));
    const x = steps[index];
    cursor.setAttribute("x1", sx(x));
    cursor.setAttribute("x2", sx(x));
    cursor.setAttribute("visibility", "visible");
    const values = lines.map((s) => {
      const p = s.pts.find((q) => q[0] === x);
      return p ? `${s.label || s.name} ${yFormat(p[1])}` : null;
    }).filter(Boolean);
    readout.textContent = `step ${formatNumber(x)}: ${values.join(", ")}`;
  };
  svg.addEventListener("pointermove", (event) => {
    const box = svg.getBoundingClientRect();
    const x = x0 + ((event.clientX - box.left) / box.width * W - M.left) / (W - M.left - M.right) * (x1 - x0);
    let best = 0;
    steps.forEach((s, i) => { if (Math.abs(s - x) < Math.abs(steps[best] - x)) best = i; });
    show(best);
  });
  figure.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: index - 1, ArrowRight: index + 1, Home: 0, End: steps.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    show(index < 0 && event.key.startsWith("Arrow") ? steps.length - 1 : moves[event.key]);
  });
  return figure;
}

/** Light to dark blue; t in [0, 1]. */
function blue(t) {
  const a = [244, 248, 253], b = [74, 144, 201], c = [8, 48, 107];
  const [p, q, u] = t < 0.5 ? [a, b, t * 2] : [b, c, (t - 0.5) * 2];
  return `rgb(${p.map((v, k) => Math.round(v + (q[k] - v) * u)).join(",")})`;
}

/**
 * Expert load at one step: rows are MoE layers, columns experts, each cell the fraction of that layer's routed
 * tokens the expert received. The colour saturates at twice the uniform share 1/E.
 */
export function heatmap({ id, loads, step }) {
  const layers = loads.length, experts = loads[0] ? loads[0].length : 0;
  const uniform = experts ? 1 / experts : 0;
  const left = 92, top = 22;
  const cw = Math.max(6, Math.min(40, (W - left - 10) / Math.max(experts, 1)));
  const ch = Math.max(8, Math.min(28, 220 / Math.max(layers, 1)));
  const h = top + layers * ch + 44;
  const svg = el("svg", { viewBox: `0 0 ${W} ${h}`, role: "img",
    "aria-label": `Expert load at step ${step}: ${layers} MoE layers by ${experts} experts` });
  const every = experts > 32 ? 8 : experts > 16 ? 4 : 1;
  for (let e = 0; e < experts; e += every) {
    svg.append(el("text", { x: left + e * cw + cw / 2, y: top - 6, "text-anchor": "middle" }, e));
  }
  loads.forEach((row, l) => {
    svg.append(el("text", { x: left - 8, y: top + l * ch + ch / 2 + 4, "text-anchor": "end" }, `MoE layer ${l}`));
    row.forEach((v, e) => {
      svg.append(el("rect", { x: left + e * cw, y: top + l * ch, width: cw - 1, height: ch - 1,
        fill: blue(Math.min(1, v / (2 * uniform))), "data-load": v },
      el("title", {}, `MoE layer ${l}, expert ${e}: ${(v * 100).toFixed(1)}% of routed tokens`)));
    });
  });
  const ly = top + layers * ch + 14;
  [0, 0.25, 0.5, 0.75, 1].forEach((t, i) => {
    svg.append(el("rect", { x: left + i * 36, y: ly, width: 35, height: 10, fill: blue(t) }));
  });
  svg.append(el("text", { x: left, y: ly + 24 }, "0"),
    el("text", { x: left + 2 * 36 + 17, y: ly + 24, "text-anchor": "middle" },
      `uniform ${(uniform * 100).toFixed(1)}%`),
    el("text", { x: left + 5 * 36, y: ly + 24, "text-anchor": "end" }, `≥${(2 * uniform * 100).toFixed(0)}%`),
    el("text", { x: left + 5 * 36 + 12, y: ly + 9 }, "share of the layer's routed tokens"));
  const figure = el("figure", { class: "chart heatmap", id, "data-layers": layers, "data-experts": experts,
    "data-step": step });
  figure.append(svg);
  return figure;
}
