// The live demo panel on term pages: builds controls from /api/demo/presets, shows the
// cached default result at once, streams new runs over server-sent events, and draws the
// per-layer gradient norms and the loss with Chart.js. Progressive enhancement: without
// this script the panel keeps its text and a link to the JSON.
"use strict";

(function () {
  const panel = document.getElementById("demo");
  if (!panel || !window.fetch) return;

  const state = { preset: null, result: null, source: null, charts: {}, metric: "weight_grad_norm" };
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
    : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toPrecision(3));
  // Label only the powers of ten on a log axis, as 1e-7 rather than 0.0000001.
  const logTick = (value) => {
    const exponent = Math.log10(value);
    return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? `1e${Math.round(exponent)}` : "";
  };
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = () => ["--chart-1", "--chart-2", "--chart-3", "--chart-4"].map(cssVar);

  // ------------------------------------------------------------------ controls

  function paramsFromControls() {
    const params = new URLSearchParams({ preset: state.preset.name });
    for (const spec of state.preset.params) {
      const input = panel.querySelector(`[name="${spec.name}"]`);
      if (input && String(input.value) !== String(spec.default)) params.set(spec.name, input.value);
    }
    return params;
  }

  function permalink(params) {
    const url = new URL(window.location.href);
    for (const spec of state.preset.params) url.searchParams.delete(spec.name);
    for (const [key, value] of params) if (key !== "preset") url.searchParams.set(key, value);
    url.hash = "demo";
    return url;
  }

  function control(spec, initial) {
    const id = `demo-${spec.name}`;
    const label = el("label", { for: id, text: spec.name.replace("_", " ") });
    let input;
    if (spec.kind === "choice") {
      input = el("select", { id, name: spec.name });
      for (const choice of spec.choices) input.append(el("option", { value: choice, text: choice }));
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
    return el("div", { class: "demo__control" }, label, input,
      el("span", { id: `${id}-help`, class: "visually-hidden", text: spec.help }));
  }

  function build(preset) {
    state.preset = preset;
    const query = new URLSearchParams(window.location.search);
    const form = el("form", { class: "demo__form", "aria-describedby": "demo-intro" });
    const controls = el("div", { class: "demo__controls" });
    for (const spec of preset.params) {
      const initial = query.has(spec.name) ? query.get(spec.name) : spec.default;
      controls.append(control(spec, initial));
    }
    const run = el("button", { type: "submit", text: "Run" });
    const reset = el("button", { type: "button", class: "secondary", text: "Reset" });
    const metric = el("select", { id: "demo-metric", "aria-label": "Gradient shown in the chart" },
      el("option", { value: "weight_grad_norm", text: "Weight gradient norm" }),
      el("option", { value: "activation_grad_norm", text: "Input-activation gradient norm" }));
    const link = el("a", { href: "#demo", class: "demo__permalink", text: "Permalink" });
    const json = el("a", { href: "#", download: `${preset.name}.json`, text: "JSON" });
    const csv = el("a", { href: "#", download: `${preset.name}.csv`, text: "CSV" });
    form.append(controls, el("div", { class: "demo__actions" }, run, reset, metric,
      el("span", { class: "demo__links" }, link, " · Download ", json, " · ", csv)));

    const status = el("p", { class: "demo__status", role: "status", "aria-live": "polite" });
    const summary = el("p", { class: "demo__summary", "aria-live": "polite" });
    const charts = el("div", { class: "demo__charts" },
      chartBox("grad", "Gradient norm by layer (log scale, input on the left)"),
      chartBox("loss", "Training loss by step"));
    const meta = el("p", { class: "demo__meta" });
    const table = el("details", { class: "demo__table" }, el("summary", { text: "Numbers as a table" }),
      el("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Gradient norms per layer" }));

    // A keyboard user may already be inside the panel (on its JSON link) when it is rebuilt:
    // keep their place by moving focus to the first control instead of losing it.
    const hadFocus = panel.contains(document.activeElement);
    panel.replaceChildren(
      el("h2", { id: "demo-heading", text: `Live experiment: ${preset.title}` }),
      el("p", { id: "demo-intro", class: "demo__intro", text: `${preset.description} (${preset.citation})` }),
      form, status, summary, charts, meta, table);

    form.addEventListener("submit", (event) => { event.preventDefault(); stream(); });
    reset.addEventListener("click", () => {
      for (const spec of preset.params) {
        const input = form.querySelector(`[name="${spec.name}"]`);
        input.value = spec.default;
        input.dispatchEvent(new Event("input"));
      }
      stream();
    });
    metric.addEventListener("change", () => { state.metric = metric.value; if (state.result) draw(state.result); });
    form.addEventListener("change", (event) => { if (event.target !== metric) updateLinks(); });
    Object.assign(state, { form, run, status, summary, meta, table, link, json, csv });
    updateLinks();
    if (hadFocus) controls.querySelector("input, select").focus();
  }

  function chartBox(key, title) {
    const canvas = el("canvas", { role: "img", "aria-label": title, id: `demo-chart-${key}` });
    return el("figure", { class: "demo__chart" }, el("h3", { text: title }), el("div", { class: "demo__canvas" }, canvas));
  }

  function updateLinks() {
    const params = paramsFromControls();
    state.link.href = permalink(params).toString();
    history.replaceState(null, "", permalink(params).toString());
    return params;
  }

  // ------------------------------------------------------------------ runs

  function setBusy(busy, message) {
    state.run.disabled = busy;
    state.run.textContent = busy ? "Running…" : "Run";
    state.status.textContent = message || "";
  }

  async function fetchResult(params) {
    setBusy(true, "Loading the result…");
    try {
      const response = await fetch(`${panel.dataset.api}?${params}`, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
      show(body);
      setBusy(false, body.cached ? "Cached result." : `Ran in ${Math.round(body.elapsed_ms)} ms.`);
    } catch (error) {
      setBusy(false, `Could not run the experiment: ${error.message}`);
    }
  }

  function stream() {
    if (state.source) state.source.close();
    const params = updateLinks();
    if (!window.EventSource) { fetchResult(params); return; }
    setBusy(true, "Starting…");
    const live = { variants: null, finished: false };
    const source = new EventSource(`${panel.dataset.stream}?${params}`);
    state.source = source;
    source.addEventListener("progress", (event) => {
      const data = JSON.parse(event.data);
      state.status.textContent = `Step ${data.step} of ${data.total_steps}…`;
      live.variants = Object.keys(data.layers).map((name) => ({
        name, label: labelFor(name), layers: data.layers[name], loss: data.losses[name] || [],
      }));
      draw({ variants: live.variants, config: { steps: data.total_steps } });
    });
    source.addEventListener("result", (event) => {
      live.finished = true;
      source.close();
      const body = JSON.parse(event.data);
      show(body);
      setBusy(false, body.cached ? "Cached result." : `Ran in ${Math.round(body.elapsed_ms)} ms on ${body.device}.`);
    });
    source.addEventListener("error", (event) => {
      source.close();
      if (live.finished) return;
      if (event.data) {
        const body = JSON.parse(event.data);
        setBusy(false, `The run stopped: ${body.message}`);
      } else {
        // The stream was refused (busy, bad input): ask the JSON route for the reason.
        fetchResult(params);
      }
    });
  }

  function labelFor(name) {
    const variant = state.preset.variants.find((v) => v.name === name);
    return variant ? variant.label : name;
  }

  // ------------------------------------------------------------------ drawing

  function show(result) {
    state.result = result;
    draw(result);
    state.summary.textContent = result.summary;
    state.meta.textContent = `Device: ${result.device} · torch ${result.torch_version} · ` +
      `${Math.round(result.elapsed_ms)} ms${result.cached ? " (cached)" : ""} · seed ${result.config.seed}`;
    fillTable(result);
    const blob = (text, type) => URL.createObjectURL(new Blob([text], { type }));
    state.json.href = blob(JSON.stringify(result, null, 2), "application/json");
    state.csv.href = blob(toCsv(result), "text/csv");
  }

  function draw(result) {
    if (!window.Chart) return;
    const colors = palette();
    const text = cssVar("--muted");
    const grid = cssVar("--border");
    const gradSets = result.variants.map((v, i) => ({
      label: v.label,
      data: v.layers.map((layer) => ({ x: layer.index, y: layer[state.metric] > 0 ? layer[state.metric] : null })),
      borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length],
      borderDash: i % 2 ? [6, 3] : [], pointRadius: 2, tension: 0,
    }));
    const lossSets = result.variants.map((v, i) => ({
      label: v.label,
      data: v.loss.map((y, step) => ({ x: step, y })),
      borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length],
      borderDash: i % 2 ? [6, 3] : [], pointRadius: 0, tension: 0,
    }));
    const axes = (xTitle, yTitle, log, xMin, xMax) => ({
      x: { type: "linear", min: xMin, max: xMax, title: { display: true, text: xTitle, color: text },
        ticks: { color: text, precision: 0 }, grid: { color: grid } },
      y: { type: log ? "logarithmic" : "linear", title: { display: true, text: yTitle, color: text },
        ticks: { color: text, callback: (value) => (log ? logTick(value) : value) }, grid: { color: grid } },
    });
    const depth = Math.max(1, ...result.variants.map((v) => v.layers.length));
    const steps = Math.max(1, ...result.variants.map((v) => v.loss.length - 1));
    const options = (xTitle, yTitle, log, xMin, xMax) => ({
      animation: false, responsive: true, maintainAspectRatio: false, parsing: true,
      scales: axes(xTitle, yTitle, log, xMin, xMax),
      plugins: { legend: { labels: { color: text } }, tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.y)}` } } },
    });
    upsert("grad", gradSets, options("layer (1 = nearest the input)", "gradient norm", true, 1, depth));
    upsert("loss", lossSets, options("step", "loss", false, 0, Math.max(steps, result.config.steps || 0)));
  }

  function upsert(key, datasets, options) {
    const existing = state.charts[key];
    if (existing) {
      existing.data.datasets = datasets;
      existing.options = options;
      existing.update("none");
      return;
    }
    const canvas = document.getElementById(`demo-chart-${key}`);
    state.charts[key] = new window.Chart(canvas, { type: "line", data: { datasets }, options });
  }

  function fillTable(result) {
    const table = el("table", { class: "data-table" });
    table.append(el("caption", { text: "Gradient norms per layer at initialization" }));
    const head = el("tr", {}, el("th", { scope: "col", text: "Layer" }));
    for (const v of result.variants) {
      head.append(el("th", { scope: "col", text: `${v.label}: weight grad` }),
        el("th", { scope: "col", text: `${v.label}: input grad` }));
    }
    table.append(el("thead", {}, head));
    const body = el("tbody");
    const depth = Math.max(...result.variants.map((v) => v.layers.length));
    for (let i = 0; i < depth; i++) {
      const row = el("tr", {}, el("th", { scope: "row", text: String(i + 1) }));
      for (const v of result.variants) {
        const layer = v.layers[i] || {};
        row.append(el("td", { text: fmt(layer.weight_grad_norm) }), el("td", { text: fmt(layer.activation_grad_norm) }));
      }
      body.append(row);
    }
    const loss = el("tr", {}, el("th", { scope: "row", text: "final loss" }));
    for (const v of result.variants) loss.append(el("td", { colspan: 2, text: fmt(v.loss[v.loss.length - 1]) }));
    body.append(loss);
    table.append(body);
    state.table.querySelector(".table-scroll").replaceChildren(table);
  }

  function toCsv(result) {
    const rows = [["variant", "step", "layer", "weight_grad_norm", "activation_grad_norm"]];
    for (const v of result.variants) {
      for (const layer of v.layers) rows.push([v.name, 0, layer.index, layer.weight_grad_norm, layer.activation_grad_norm]);
      for (const rec of v.recorded_steps || []) {
        if (rec.step === 0) continue;
        for (const layer of rec.layers) rows.push([v.name, rec.step, layer.index, layer.weight_grad_norm, layer.activation_grad_norm]);
      }
    }
    rows.push([]);
    rows.push(["variant", "step", "loss"]);
    for (const v of result.variants) v.loss.forEach((loss, step) => rows.push([v.name, step, loss]));
    return rows.map((r) => r.join(",")).join("\n") + "\n";
  }

  // ------------------------------------------------------------------ start

  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (state.result) draw(state.result);
  });

  // Nothing is fetched until the panel is about to scroll into view: a reader who never gets
  // that far downloads neither Chart.js (200 KB) nor the result, and the page's largest paint
  // (its summary) does not wait behind them on a slow connection.
  function loadChart() {
    if (window.Chart || !panel.dataset.chartjs) return;
    const script = el("script", { src: panel.dataset.chartjs });
    script.addEventListener("load", () => { if (state.result) draw(state.result); });
    document.head.append(script);
  }

  function start() {
    loadChart();
    fetch(panel.dataset.presets, { headers: { Accept: "application/json" } })
      .then((response) => response.json())
      .then((presets) => {
        const preset = presets.find((p) => p.name === panel.dataset.preset) || presets[0];
        build(preset);
        fetchResult(paramsFromControls());
      })
      .catch(() => { /* keep the no-script text and its JSON link */ });
  }

  if (window.IntersectionObserver) {
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) { observer.disconnect(); start(); }
    }, { rootMargin: "400px 0px" });
    observer.observe(panel);
  } else {
    start();
  }
})();
