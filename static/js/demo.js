// The live experiment panel on term pages. It builds a picker and controls from
// /api/demo/presets, opens on the page's own experiment, shows its cached default result at
// once, streams new runs over server-sent events and draws every chart the result carries
// (lines, bars, contour heat maps) with Chart.js. Each claim the run checked is shown as
// reproduced or not. Progressive enhancement: without this script the panel keeps its text,
// its claims and a link to the JSON.
// In an experiment card (/embed/demo/..., data-embed) it starts at once on the card's own
// settings (data-initial), leaves out the picker, and keeps the locked controls
// (data-lock) disabled at their values: no run it asks for changes them.
"use strict";

(function () {
  const panel = document.getElementById("demo");
  if (!panel || !window.fetch) return;

  const state = { catalog: [], experiment: null, result: null, source: null, charts: {} };
  const pageExperiment = panel.dataset.preset;
  const embedded = "embed" in panel.dataset;
  const locked = new Set((panel.dataset.lock || "").split(",").filter(Boolean));
  const cardSettings = new URLSearchParams(panel.dataset.initial || "");

  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  };
  const fmt = (x) => (x === null || x === undefined || !isFinite(x) ? "–"
    : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(3)).toString());
  // Label only the powers of ten on a log axis, as 1e-7 rather than 0.0000001.
  const logTick = (value) => {
    const exponent = Math.log10(value);
    return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? `1e${Math.round(exponent)}` : "";
  };
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = () => [1, 2, 3, 4, 5, 6].map((i) => cssVar(`--chart-${i}`));

  // ------------------------------------------------------------------ controls and links

  function paramsFromControls() {
    const params = new URLSearchParams({ preset: state.experiment.name });
    for (const spec of state.experiment.params) {
      const input = panel.querySelector(`[name="${spec.name}"]`);
      const value = isLocked(spec) ? lockedValue(spec) : input && input.value;
      if (value !== undefined && value !== null && String(value) !== String(spec.default)) params.set(spec.name, value);
    }
    return params;
  }

  // Locks apply to the card's experiment only (an embed has no picker to leave it).
  const isLocked = (spec) => embedded && state.experiment.name === pageExperiment && locked.has(spec.name);
  const lockedValue = (spec) => (cardSettings.has(spec.name) ? cardSettings.get(spec.name) : spec.default);

  // The page's own URL carries the run: ?demo=<experiment> when it is not the page's own,
  // then every parameter that differs from its default.
  function permalink(params) {
    const url = new URL(embedded ? panel.dataset.page : window.location.href, window.location.href);
    const known = new Set(["demo"]);
    for (const experiment of state.catalog) for (const spec of experiment.params) known.add(spec.name);
    for (const key of known) url.searchParams.delete(key);
    // a card's term page may open on another experiment: name the card's
    if (embedded || state.experiment.name !== pageExperiment) url.searchParams.set("demo", state.experiment.name);
    for (const [key, value] of params) if (key !== "preset") url.searchParams.set(key, value);
    url.hash = "demo";
    return url;
  }

  function control(spec, initial) {
    const id = `demo-${spec.name}`;
    const label = el("label", { for: id, text: spec.name.replace(/_/g, " ") });
    let input;
    if (spec.kind === "choice") {
      input = el("select", { id, name: spec.name });
      for (const choice of spec.choices) input.append(el("option", { value: choice, text: choice }));
      input.value = initial;
    } else if (spec.kind === "text") {
      const tag = spec.max_length > 200 ? "textarea" : "input";
      input = el(tag, { id, name: spec.name, maxlength: spec.max_length, spellcheck: "false",
        type: tag === "input" ? "text" : undefined, rows: tag === "textarea" ? 3 : undefined });
      input.value = initial;
    } else if (spec.kind === "int" && spec.max - spec.min <= 4096) {
      const out = el("output", { for: id, text: String(initial) });
      label.append(out);
      input = el("input", { id, name: spec.name, type: "range", min: spec.min, max: spec.max, step: 1, value: initial });
      input.addEventListener("input", () => { out.textContent = input.value; });
    } else {
      const step = spec.kind === "int" ? 1 : "any";
      input = el("input", { id, name: spec.name, type: "number", min: spec.min, max: spec.max, step, value: initial, inputmode: spec.kind === "int" ? "numeric" : "decimal" });
    }
    input.setAttribute("aria-describedby", `${id}-help`);
    const fixed = isLocked(spec);
    if (fixed) {
      input.disabled = true;
      label.append(el("span", { class: "demo__fixed", text: "fixed" }));
    }
    return el("div", { class: fixed ? "demo__control demo__control--locked" : "demo__control", "data-locked": fixed },
      label, input, el("span", { id: `${id}-help`, class: "visually-hidden",
        text: fixed ? `${spec.help} Fixed by the page that shows this experiment.` : spec.help }));
  }

  function picker(current) {
    const select = el("select", { id: "demo-experiment", name: "experiment" });
    const families = new Map();
    for (const experiment of state.catalog) {
      if (!families.has(experiment.family)) families.set(experiment.family, []);
      families.get(experiment.family).push(experiment);
    }
    for (const [family, experiments] of families) {
      const group = el("optgroup", { label: family.replace(/-/g, " ") });
      for (const experiment of experiments) {
        const own = experiment.name === pageExperiment ? " (this page)" : "";
        group.append(el("option", { value: experiment.name, text: experiment.title + own }));
      }
      select.append(group);
    }
    select.value = current.name;
    return el("div", { class: "demo__picker" }, el("label", { for: "demo-experiment", text: "Experiment" }), select);
  }

  function build(experiment, query) {
    state.experiment = experiment;
    for (const chart of Object.values(state.charts)) chart.destroy();
    state.charts = {};
    const form = el("form", { class: "demo__form", "aria-describedby": "demo-intro" });
    const controls = el("div", { class: "demo__controls" });
    for (const spec of experiment.params) {
      const initial = query && query.has(spec.name) ? query.get(spec.name) : spec.default;
      controls.append(control(spec, isLocked(spec) ? lockedValue(spec) : initial));
    }
    const run = el("button", { type: "submit", text: "Run" });
    const reset = el("button", { type: "button", class: "secondary", text: "Reset" });
    const link = el("a", { href: "#demo", class: "demo__permalink", text: "Permalink" });
    const json = el("a", { href: "#", download: `${experiment.name}.json`, text: "JSON" });
    const csv = el("a", { href: "#", download: `${experiment.name}.csv`, text: "CSV" });
    // Every experiment is a standalone script (those on the language model train it first).
    const script = el("a", { href: panel.dataset.script, download: `${experiment.name}.py`, class: "demo__script", text: "Download as script" });
    if (embedded) Object.assign(link, { target: "_blank", rel: "noopener", textContent: "Open in Glossary Lab" });
    form.append(controls, el("div", { class: "demo__actions" }, run, reset,
      el("span", { class: "demo__links" }, link, " · Download ", json, " · ", csv, " · ", script)));

    const status = el("p", { class: "demo__status", role: "status", "aria-live": "polite" });
    const claims = el("section", { class: "demo__claims", "aria-labelledby": "demo-claims-heading" },
      el("h3", { id: "demo-claims-heading", text: "What the run checks" }),
      el("ul", { class: "claims" }, ...experiment.claims.map((c) => el("li", { class: "claim", "data-claim": c.id },
        el("span", { class: "claim__mark", text: "…" }), " ", el("span", { class: "claim__statement", text: c.statement })))));
    const summary = el("p", { class: "demo__summary", "aria-live": "polite" });
    const charts = el("div", { class: "demo__charts" }, ...experiment.charts.map((c) => chartBox(c)));
    const meta = el("p", { class: "demo__meta" });
    const samples = el("section", { class: "demo__samples", hidden: true, "aria-labelledby": "demo-samples-heading" });
    const tables = el("details", { class: "demo__table" }, el("summary", { text: "Numbers as tables" }),
      el("div", { class: "demo__tables" }));

    // A keyboard user may already be inside the panel (on its JSON link or the picker) when
    // it is rebuilt: keep their place instead of losing focus to the page.
    const focused = panel.contains(document.activeElement) ? document.activeElement.id : null;
    panel.replaceChildren(...[
      el("h2", { id: "demo-heading", text: `Live experiment: ${experiment.title}` }),
      embedded ? null : picker(experiment),
      el("p", { id: "demo-intro", class: "demo__intro", text: `${experiment.description} (${experiment.citation})` }),
      form, status, claims, summary, charts, samples, meta, tables].filter(Boolean));

    if (!embedded) panel.querySelector("#demo-experiment").addEventListener("change", (event) => {
      const next = state.catalog.find((e) => e.name === event.target.value);
      if (next) { build(next, null); stream(); }
    });
    form.addEventListener("submit", (event) => { event.preventDefault(); stream(); });
    reset.addEventListener("click", () => {
      for (const spec of experiment.params) {
        const input = form.querySelector(`[name="${spec.name}"]`);
        if (isLocked(spec)) continue;
        input.value = spec.default;
        input.dispatchEvent(new Event("input"));
      }
      stream();
    });
    form.addEventListener("change", updateLinks);
    Object.assign(state, { form, run, status, summary, meta, tables, link, json, csv, script, claims, samples, chartsBox: charts });
    updateLinks();
    if (focused === "demo-experiment" && !embedded) panel.querySelector("#demo-experiment").focus();
    else if (focused) controls.querySelector("input, select").focus();
  }

  function chartBox(spec) {
    const canvas = el("canvas", { role: "img", "aria-label": spec.title, id: `demo-chart-${spec.id}` });
    return el("figure", { class: "demo__chart", "data-chart": spec.id },
      el("h3", { text: spec.title }), el("div", { class: "demo__canvas" }, canvas),
      el("figcaption", { class: "demo__finding" }));
  }

  function updateLinks() {
    const params = paramsFromControls();
    const url = permalink(params).toString();
    state.link.href = url;
    if (state.script) state.script.href = `${panel.dataset.script}?${params}`;
    if (!embedded) history.replaceState(null, "", url);  // a card's own URL keeps its settings
    return params;
  }

  // ------------------------------------------------------------------ runs

  function setBusy(busy, message) {
    state.run.disabled = busy;
    state.run.textContent = busy ? "Running…" : "Run";
    state.status.textContent = message || "";
  }

  const ranIn = (body) => {
    if (body.source === "cache" || body.cached) return "Cached result.";
    const ran = `Ran in ${Math.round(body.elapsed_ms)} ms on ${body.device}`;
    return body.source === "joined" ? `${ran} (joined a run of the same settings already under way).` : `${ran}.`;
  };
  const inLine = (position) => (position <= 1
    ? "Waiting for a free worker: yours is next."
    : `Waiting for a free worker: ${position - 1} run${position === 2 ? "" : "s"} ahead of yours.`);

  async function fetchResult(params) {
    setBusy(true, "Loading the result…");
    try {
      const response = await fetch(`${panel.dataset.api}?${params}`, { headers: { Accept: "application/json" } });
      const body = await response.json();
      // The language model this experiment runs on is still training: watch it on the stream.
      if (response.status === 503 && body.details && body.details.reason === "model_training" && window.EventSource) {
        stream();
        return;
      }
      if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
      show(body);
      setBusy(false, ranIn(body));
    } catch (error) {
      setBusy(false, `Could not run the experiment: ${error.message}`);
    }
  }

  function stream() {
    if (state.source) state.source.close();
    const params = updateLinks();
    if (!window.EventSource) { fetchResult(params); return; }
    setBusy(true, "Starting…");
    let finished = false;
    const source = new EventSource(`${panel.dataset.stream}?${params}`);
    state.source = source;
    source.addEventListener("queued", (event) => {
      state.status.textContent = inLine(JSON.parse(event.data).position);
    });
    source.addEventListener("progress", (event) => {
      const data = JSON.parse(event.data);
      state.status.textContent = data.phase === "model_training"
        ? `Training the glossary's language model first (it runs once per server): step ${data.step} of ${data.total_steps}…`
        : `Step ${data.step} of ${data.total_steps}…`;
      if (data.charts && data.charts.length) drawCharts(data.charts);
    });
    source.addEventListener("result", (event) => {
      finished = true;
      source.close();
      const body = JSON.parse(event.data);
      show(body);
      setBusy(false, ranIn(body));
    });
    source.addEventListener("error", (event) => {
      // A dropped connection: the browser reconnects by itself with Last-Event-ID and the
      // server replays what was missed, so keep listening.
      if (!finished && !event.data && source.readyState === EventSource.CONNECTING) {
        state.status.textContent = "Connection lost; reconnecting…";
        return;
      }
      source.close();
      if (finished) return;
      if (event.data) {
        const body = JSON.parse(event.data);
        setBusy(false, `The run stopped: ${body.message}`);
      } else {
        // The stream was refused (busy, bad input): ask the JSON route for the reason.
        fetchResult(params);
      }
    });
  }

  // ------------------------------------------------------------------ showing a result

  function show(result) {
    state.result = result;
    const training = panel.querySelector('[data-chart="model_training"]');
    if (training) { if (state.charts.model_training) { state.charts.model_training.destroy(); delete state.charts.model_training; } training.remove(); }
    drawCharts(result.charts);
    showSamples(result.samples || []);
    showClaims(result);
    state.summary.textContent = result.summary;
    state.meta.textContent = `Device: ${result.device} · torch ${result.torch_version} · ` +
      `${Math.round(result.elapsed_ms)} ms${result.cached ? " (cached)" : ""} · seed ${result.config.seed}` +
      (result.model ? ` · language model “${result.model.name}”, ${result.model.parameters.toLocaleString("en")} parameters, ` +
        `${result.model.steps} steps, validation loss ${fmt(result.model.final_val_loss)} nats, weights ${result.model.weights_hash.slice(0, 12)}` : "");
    fillTables(result);
    const blob = (text, type) => URL.createObjectURL(new Blob([text], { type }));
    state.json.href = blob(JSON.stringify(result, null, 2), "application/json");
    state.csv.href = blob(toCsv(result), "text/csv");
  }

  // Text a run produced or read: the prompt (muted) and the text, then its tokens when they
  // say more than the characters do (merged pieces, special tokens, partial UTF-8 bytes).
  function showSamples(samples) {
    state.samples.hidden = !samples.length;
    const items = samples.map((s) => {
      const text = el("p", { class: "sample__text" },
        s.prompt ? el("span", { class: "sample__prompt", text: s.prompt }) : null,
        document.createTextNode(s.text));
      const telling = s.tokens && s.tokens.some((t) => [...t].length > 1);
      const tokens = telling
        ? el("p", { class: "sample__tokens", "aria-label": "tokens" }, ...s.tokens.map((t) =>
          el("span", { class: /^<\|.*\|>$/.test(t) ? "token token--special" : "token", text: t.replace(/\n/g, "⏎") })))
        : null;
      return el("li", { class: "sample", "data-variant": s.variant || "" },
        el("strong", { class: "sample__label", text: s.label }), text, tokens,
        s.note ? el("span", { class: "sample__note", text: s.note }) : null);
    });
    state.samples.replaceChildren(el("h3", { id: "demo-samples-heading", text: "Text from this run" }),
      el("ul", { class: "samples" }, ...items));
  }

  function showClaims(result) {
    const list = el("ul", { class: "claims" });
    for (const claim of result.claims) {
      const ok = claim.holds;
      list.append(el("li", { class: `claim ${ok ? "claim--holds" : "claim--fails"}`, "data-claim": claim.id, "data-holds": String(ok) },
        el("span", { class: "claim__mark", text: ok ? "✓ Reproduced" : "✗ Not reproduced" }), " ",
        el("span", { class: "claim__statement", text: claim.statement }),
        el("span", { class: "claim__numbers", text: ` Measured ${fmt(claim.measured)}; expected ${claim.expected}. (${claim.citation})` })));
    }
    const main = result.claims[0];
    // Reset keeps a card's locked values: only say it helps when no lock holds a non-default.
    const lockedAway = state.experiment.params.some((spec) => isLocked(spec) && String(lockedValue(spec)) !== String(spec.default));
    const advice = lockedAway ? "The card's author fixed some settings away from the defaults." : "Reset to the defaults to see it.";
    const note = main && !main.holds
      ? el("p", { class: "claim__note", text: `At these settings the published effect did not appear in this run. ${advice}` })
      : null;
    state.claims.replaceChildren(el("h3", { id: "demo-claims-heading", text: "What the run checked" }), list, note || "");
  }

  function axis(title, log, text, grid, extra) {
    return Object.assign({
      type: log ? "logarithmic" : "linear",
      title: { display: true, text: title, color: text },
      ticks: { color: text, callback: (value) => (log ? logTick(value) : fmt(value)) },
      grid: { color: grid },
    }, extra || {});
  }

  function drawCharts(charts) {
    if (!window.Chart) return;
    for (const chart of charts) {
      let box = panel.querySelector(`[data-chart="${chart.id}"]`);
      if (!box) { // a chart the catalog does not list (the model's training curve, one map per head)
        if (!state.chartsBox) continue;
        box = chartBox(chart);
        if (chart.id === "model_training") state.chartsBox.prepend(box); else state.chartsBox.append(box);
      }
      box.querySelector(".demo__finding").textContent = chart.finding || "";
      if (chart.kind === "heatmap") heatmapTable(box, chart); else upsert(chart);
    }
  }

  // A heat map (attention weights) as a table of shaded cells: readable, and a screen reader
  // can walk it. z[j][i] is row j (a query token), column i (a key token).
  function heatmapTable(box, chart) {
    const grid = chart.grid || { z: [] };
    const cols = chart.categories || grid.x.map(String);
    const rows = chart.y_categories || grid.y.map(String);
    const max = Math.max(1e-12, ...grid.z.flat().filter((v) => v !== null));
    const table = el("table", { class: "heatmap", "data-heatmap": chart.id },
      el("caption", { class: "visually-hidden", text: `${chart.title}: ${chart.y_label} by ${chart.x_label}` }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "" }),
        ...cols.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, ...grid.z.map((row, j) => el("tr", {}, el("th", { scope: "row", text: rows[j] }),
        ...row.map((v) => {
          const cell = el("td", { title: fmt(v) });
          // CSSOM, not a style attribute: the CSP allows no inline styles
          cell.style.setProperty("--w", v === null ? "0" : (v / max).toFixed(3));
          return cell;
        })))));
    box.querySelector(".demo__canvas").replaceChildren(el("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": chart.title }, table));
    box.classList.add("demo__chart--heatmap");
  }

  function datasetsOf(chart) {
    const colors = palette();
    const variants = state.experiment.variants.map((v) => v.name);
    return chart.series.map((series, i) => {
      const at = series.variant ? variants.indexOf(series.variant) : -1;
      const index = at >= 0 ? at : i;
      const color = colors[index % colors.length];
      // past the palette, colours repeat: dash the second round so every line stays distinct
      const dashed = series.style === "dashed" || index >= colors.length;
      const positive = (y) => (chart.y_log && !(y > 0) ? null : y);
      return {
        label: series.label,
        data: chart.kind === "bar"
          ? series.points.map(([, y]) => y)
          : series.points.map(([x, y]) => ({ x, y: positive(y) })),
        borderColor: color, backgroundColor: color,
        borderDash: dashed ? [6, 3] : [],
        showLine: series.style !== "points",
        pointRadius: series.style === "points" ? 3 : chart.kind === "contour" ? 1.5 : series.points.length > 60 ? 0 : 2,
        tension: 0, spanGaps: false,
      };
    });
  }

  function optionsOf(chart) {
    const text = cssVar("--muted");
    const grid = cssVar("--border");
    const xs = chart.series.flatMap((s) => s.points.map(([x]) => x));
    const bounds = chart.kind === "contour" && chart.grid
      ? { min: chart.grid.x[0], max: chart.grid.x[chart.grid.x.length - 1] }
      : chart.kind === "bar" || !xs.length ? {} : { min: Math.min(...xs), max: Math.max(...xs) };
    const ybounds = chart.kind === "contour" && chart.grid
      ? { min: chart.grid.y[0], max: chart.grid.y[chart.grid.y.length - 1] } : {};
    return {
      animation: false, responsive: true, maintainAspectRatio: false,
      scales: {
        x: chart.kind === "bar"
          ? { type: "category", title: { display: true, text: chart.x_label, color: text }, ticks: { color: text }, grid: { color: grid } }
          : axis(chart.x_label, chart.x_log, text, grid, bounds),
        y: axis(chart.y_label, chart.y_log, text, grid, ybounds),
      },
      plugins: {
        legend: { labels: { color: text } },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.y)}` } },
      },
    };
  }

  // A contour chart's grid is painted as a heat map (log of the value) under its series.
  const heatmap = {
    id: "gl-heatmap",
    beforeDatasetsDraw(chart) {
      const grid = chart.config.options.glGrid;
      if (!grid) return;
      const { ctx, chartArea, scales } = chart;
      const flat = grid.z.flat().filter((v) => v > 0);
      const lo = Math.log(Math.min(...flat));
      const hi = Math.log(Math.max(...flat));
      const base = cssVar("--chart-1");
      ctx.save();
      ctx.beginPath();
      ctx.rect(chartArea.left, chartArea.top, chartArea.right - chartArea.left, chartArea.bottom - chartArea.top);
      ctx.clip();
      for (let j = 0; j < grid.y.length - 1; j++) {
        for (let i = 0; i < grid.x.length - 1; i++) {
          const v = grid.z[j][i];
          const level = v > 0 && hi > lo ? (Math.log(v) - lo) / (hi - lo) : 0;
          ctx.globalAlpha = 0.06 + 0.5 * (1 - level);
          ctx.fillStyle = base;
          const x0 = scales.x.getPixelForValue(grid.x[i]);
          const x1 = scales.x.getPixelForValue(grid.x[i + 1]);
          const y0 = scales.y.getPixelForValue(grid.y[j]);
          const y1 = scales.y.getPixelForValue(grid.y[j + 1]);
          ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0) + 0.5, Math.abs(y1 - y0) + 0.5);
        }
      }
      ctx.restore();
    },
  };

  function upsert(chart) {
    const datasets = datasetsOf(chart);
    const options = Object.assign(optionsOf(chart), { glGrid: chart.kind === "contour" ? chart.grid : null });
    const labels = chart.kind === "bar" ? chart.categories || [] : undefined;
    const existing = state.charts[chart.id];
    if (existing) {
      existing.data.datasets = datasets;
      if (labels) existing.data.labels = labels;
      existing.options = options;
      existing.update("none");
      return;
    }
    const canvas = document.getElementById(`demo-chart-${chart.id}`);
    if (!canvas) return;
    state.charts[chart.id] = new window.Chart(canvas, {
      type: chart.kind === "bar" ? "bar" : "line",
      data: labels ? { labels, datasets } : { datasets },
      options,
      plugins: [heatmap],
    });
  }

  // ------------------------------------------------------------------ tables and CSV

  function fillTables(result) {
    const tables = [];
    const metrics = el("table", { class: "data-table", "data-table": "metrics" },
      el("caption", { text: "Metrics per variant" }));
    const names = [...new Set(result.variants.flatMap((v) => Object.keys(v.metrics)))];
    metrics.append(el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Metric" }),
      ...result.variants.map((v) => el("th", { scope: "col", text: v.label })))));
    metrics.append(el("tbody", {}, ...names.map((name) => el("tr", {}, el("th", { scope: "row", text: name }),
      ...result.variants.map((v) => el("td", { text: fmt(v.metrics[name]) }))))));
    tables.push(metrics);
    for (const chart of result.charts) if (chart.kind !== "heatmap") tables.push(chartTable(chart));
    state.tables.querySelector(".demo__tables").replaceChildren(
      ...tables.map((t) => el("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": t.querySelector("caption").textContent }, t)));
  }

  function chartTable(chart) {
    const table = el("table", { class: "data-table", "data-table": chart.id }, el("caption", { text: chart.title }));
    const xs = chart.kind === "bar"
      ? (chart.categories || []).map((_, i) => i)
      : [...new Set(chart.series.flatMap((s) => s.points.map(([x]) => x)))].sort((a, b) => a - b);
    table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col", text: chart.x_label }),
      ...chart.series.map((s) => el("th", { scope: "col", text: s.label })))));
    const lookup = chart.series.map((s) => new Map(s.points.map(([x, y]) => [x, y])));
    const rows = xs.map((x) => el("tr", {},
      el("th", { scope: "row", text: chart.kind === "bar" ? chart.categories[x] : fmt(x) }),
      ...lookup.map((m) => el("td", { text: m.has(x) ? fmt(m.get(x)) : "" }))));
    table.append(el("tbody", {}, ...rows));
    return table;
  }

  function toCsv(result) {
    const rows = [["chart", "series", "x", "y"]];
    for (const chart of result.charts) {
      for (const series of chart.series) {
        for (const [x, y] of series.points) {
          rows.push([chart.id, series.label, chart.kind === "bar" ? chart.categories[x] : x, y === null ? "" : y]);
        }
      }
    }
    rows.push([]);
    rows.push(["variant", "metric", "value"]);
    for (const v of result.variants) for (const [k, value] of Object.entries(v.metrics)) rows.push([v.name, k, value === null ? "" : value]);
    rows.push([]);
    rows.push(["claim", "measured", "expected", "holds"]);
    for (const c of result.claims) rows.push([c.id, c.measured === null ? "" : c.measured, c.expected, c.holds]);
    const cell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    return rows.map((r) => r.map(cell).join(",")).join("\n") + "\n";
  }

  // ------------------------------------------------------------------ start

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (state.result) { for (const chart of Object.values(state.charts)) chart.destroy(); state.charts = {}; drawCharts(state.result.charts); }
  });

  // Nothing is fetched until the panel is about to scroll into view: a reader who never gets
  // that far downloads neither Chart.js (200 KB) nor the result, and the page's largest paint
  // (its summary) does not wait behind them on a slow connection.
  function loadChart() {
    if (window.Chart || !panel.dataset.chartjs) return;
    const script = el("script", { src: panel.dataset.chartjs });
    script.addEventListener("load", () => { if (state.result) drawCharts(state.result.charts); });
    document.head.append(script);
  }

  function start() {
    loadChart();
    fetch(panel.dataset.presets, { headers: { Accept: "application/json" } })
      .then((response) => response.json())
      .then((catalog) => {
        state.catalog = catalog;
        const query = embedded ? cardSettings : new URLSearchParams(window.location.search);
        const wanted = query.get("demo") || pageExperiment;
        const experiment = catalog.find((e) => e.name === wanted)
          || catalog.find((e) => e.name === pageExperiment) || catalog[0];
        build(experiment, query);
        stream();  // a cached result comes as one event; an uncached one shows its place in line
      })
      .catch(() => { /* keep the no-script text and its JSON link */ });
  }

  if (embedded) {
    start();  // a card is nothing but the panel: no reason to wait for it to scroll near
  } else if (window.IntersectionObserver) {
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) { observer.disconnect(); start(); }
    }, { rootMargin: "400px 0px" });
    observer.observe(panel);
  } else {
    start();
  }
})();
