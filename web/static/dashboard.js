// The live dashboard: each panel's lines from /web/dashboard/{panel} (the server proxies
// Prometheus's query_range), drawn as SVG polylines, refreshed every few seconds.
"use strict";

const REFRESH_MS = 5000;
const W = 480, H = 200, PAD_L = 56, PAD_B = 22, PAD_T = 8, PAD_R = 8;
const COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d"];
const SVG_NS = "http://www.w3.org/2000/svg";

function fmt(v, unit) {
  if (!isFinite(v)) return "–";
  switch (unit) {
    case "ratio": return `${(v * 100).toFixed(1)} %`;
    case "bytes": {
      const units = ["B", "KB", "MB", "GB", "TB"];
      let i = 0;
      while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
      return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
    }
    case "seconds": return v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(2)} s`;
    case "per-s": return `${v.toFixed(v < 10 ? 2 : 0)}/s`;
    default: return Math.abs(v) >= 1000 ? v.toExponential(2) : `${+v.toFixed(2)}`;
  }
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(figure, data) {
  figure.querySelector(".chart-title").textContent = data.title;
  const svg = figure.querySelector("svg");
  const legend = figure.querySelector(".legend");
  svg.replaceChildren();
  legend.replaceChildren();
  const values = data.lines.flatMap((l) => l.points.map((p) => p[1]));
  let lo = Math.min(0, ...values), hi = Math.max(...values, 0);
  if (data.unit === "ratio") hi = Math.max(hi, 1e-9);
  if (hi === lo) hi = lo + 1;
  const x = (t) => PAD_L + (W - PAD_L - PAD_R) * (t - data.start) / (data.end - data.start);
  const y = (v) => H - PAD_B - (H - PAD_B - PAD_T) * (v - lo) / (hi - lo);
  for (const frac of [0, 0.5, 1]) {
    const v = lo + frac * (hi - lo);
    svg.append(svgEl("line", {x1: PAD_L, x2: W - PAD_R, y1: y(v), y2: y(v), class: "grid-line"}));
    svg.append(svgEl("text", {x: PAD_L - 4, y: y(v) + 4, "text-anchor": "end", class: "axis"}, fmt(v, data.unit)));
  }
  const minutes = Math.round((data.end - data.start) / 60);
  svg.append(svgEl("text", {x: PAD_L, y: H - 6, class: "axis"}, `−${minutes} min`));
  svg.append(svgEl("text", {x: W - PAD_R, y: H - 6, "text-anchor": "end", class: "axis"}, "now"));
  if (!data.lines.length || !values.length) {
    svg.append(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata"}, data.empty));
  }
  data.lines.forEach((line, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = line.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    if (line.points.length === 1) {
      const [t, v] = line.points[0];
      svg.append(svgEl("circle", {cx: x(t), cy: y(v), r: 2.5, fill: colour}));
    } else if (line.points.length) {
      svg.append(svgEl("polyline", {points: pts, fill: "none", stroke: colour, "stroke-width": 1.8}));
    }
    const last = line.points.length ? line.points[line.points.length - 1][1] : NaN;
    const item = document.createElement("span");
    item.className = "legend-item";
    const swatch = document.createElement("i");
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(`${line.label}: ${fmt(last, data.unit)}`));
    legend.append(item);
  });
}

function fail(figure, text) {
  const svg = figure.querySelector("svg");
  svg.replaceChildren(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata"}, text));
}

async function refresh() {
  const minutes = document.getElementById("window").value;
  await Promise.all([...document.querySelectorAll(".chart")].map(async (figure) => {
    try {
      const resp = await fetch(`/web/dashboard/${figure.dataset.panel}?minutes=${minutes}`, {credentials: "same-origin"});
      const body = await resp.json();
      if (!resp.ok) return fail(figure, body.detail || `HTTP ${resp.status}`);
      draw(figure, body);
      figure.dataset.loaded = "true";
    } catch (err) {
      fail(figure, `no answer: ${err}`);
    }
  }));
}

document.getElementById("window").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
