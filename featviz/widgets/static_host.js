// The host of a saved featviz widget page (featviz.widgets._static): runs one anywidget
// front end with no kernel and no network.
//
// The page carries, as JSON in <script id="featviz-static">, the view's ES module
// (`esm`), its synced state (`state`, binary traits apart in `buffers` as base64, put
// back as DataView as ipywidgets 7 and 8 hand them to a front end) and the controls
// (`controls`). This script stands in for the widget manager: one small model per
// view and per control, with the part of the anywidget model API the views use, the
// controls linked to the view both ways as `jslink` links them, and the lifecycle
// anywidget runs (the module's default export, `initialize` once, then `render`).
// A message for the kernel is dropped; the page says once that that part needs one.

const page = JSON.parse(document.getElementById("featviz-static").textContent);
const byId = (id) => document.getElementById(id);

function same(a, b) {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

class Model {
  constructor(attrs, manager, asks = []) {
    this.attrs = { ...attrs };
    this.handlers = [];
    this.widget_manager = manager;
    this.asks = asks;       // traits whose saving asks the kernel for an answer
    this.unsaved = new Set();
  }
  get(key) { return this.attrs[key]; }
  set(key, value) {  // set(key, value) or set({key: value, ...}), then the events, as Backbone
    const changes = typeof key === "object" && key !== null ? key : { [key]: value };
    const changed = Object.keys(changes).filter((k) => !same(this.attrs[k], changes[k]));
    changed.forEach((k) => { this.attrs[k] = changes[k]; this.unsaved.add(k); });
    changed.forEach((k) => this.emit(`change:${k}`, this.attrs[k]));
    if (changed.length) this.emit("change");
  }
  on(name, callback, context) { this.handlers.push({ name, callback, context }); }
  off(name, callback, context) {
    this.handlers = this.handlers.filter((h) => !((name == null || h.name === name)
      && (callback == null || h.callback === callback) && (context == null || h.context === context)));
  }
  emit(name, value) {
    this.handlers.filter((h) => h.name === name).forEach((h) => h.callback.call(h.context, this, value));
  }
  save_changes() {  // nothing to save to; but a question for the kernel goes unanswered
    if (this.asks.some((k) => this.unsaved.has(k))) needsKernel();
    this.unsaved.clear();
  }
  send() { needsKernel(); }
}

let told = false;
function needsKernel() {
  if (told) return;
  told = true;
  const box = byId("featviz-notice");
  box.textContent = page.kernel_note;
  box.hidden = false;
}

function bytes(b64) {
  const text = atob(b64), out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function putBuffers(state, buffers) {  // as ipywidgets' put_buffers: a DataView at each path
  for (const { path, data } of buffers) {
    let obj = state;
    path.slice(0, -1).forEach((k) => { obj = obj[k]; });
    obj[path[path.length - 1]] = new DataView(bytes(data).buffer);
  }
  return state;
}

function readout(c, v) {
  if (c.options.length) return c.options[v] ?? "";
  const f = /^\.(\d+)f$/.exec(c.readout || "");
  return f ? Number(v).toFixed(Number(f[1])) : String(Math.round(v));
}

function el(tag, cls, parent, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.append(node);
  return node;
}

// One control: a model with the attributes of an ipywidgets control model (`index` for
// a choice, `value`, `min`, `max`, `step`), and its element, each following the other.
function control(c, view, box) {
  const byIndex = c.kind !== "slider" || c.options.length > 0, key = byIndex ? "index" : "value";
  const m = new Model(byIndex ? { index: c.value, value: c.values.length ? c.values[c.value] : c.value,
    min: 0, max: c.options.length - 1, step: 1 } : { value: c.value, min: c.min, max: c.max, step: c.step });
  if (c.values.length) {  // a choice's value is its option's
    m.on("change:index", () => m.set("value", c.values[m.get("index")]));
    m.on("change:value", () => m.set("index", c.values.findIndex((v) => same(v, m.get("value")))));
  }
  const row = el("div", `fvh-control fvh-kind-${c.kind}`, box);
  if (c.width) row.style.width = c.width;
  if (c.tooltip) row.title = c.tooltip;
  if (c.kind === "button") {
    const b = el("button", "fvh-button", row, c.label);
    b.type = "button";
    b.addEventListener("click", () => { view.set(c.sets); view.save_changes(); });
    return m;
  }
  const label = el(c.kind === "toggle" ? "span" : "label", "fvh-label", row, c.label);
  let show;
  if (c.kind === "toggle") {
    const group = el("div", "fvh-toggles", row);
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", c.label);
    const buttons = c.options.map((text, i) => {
      const b = el("button", "fvh-toggle", group, text);
      b.type = "button";
      if (c.tooltips[i]) b.title = c.tooltips[i];
      b.addEventListener("click", () => m.set("index", i));
      return b;
    });
    show = () => buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === m.get("index"))));
  } else {
    const input = el(c.kind === "select" ? "select" : "input", `fvh-input fvh-${c.kind}-input`, row);
    input.id = label.htmlFor = `fvh-${c.id}`;
    if (c.kind === "select") {
      c.options.forEach((text) => el("option", "", input, text));
      input.addEventListener("change", () => m.set("index", input.selectedIndex));
      show = () => { input.selectedIndex = m.get("index") ?? -1; };
    } else {
      input.type = "range";
      const out = c.readout || c.options.length ? el("output", "fvh-readout", row) : null;
      input.addEventListener("input", () => m.set(key, Number(input.value)));
      m.on("change:max", () => { if (m.get(key) > m.get("max")) m.set(key, m.get("max")); });
      m.on("change:min", () => { if (m.get(key) < m.get("min")) m.set(key, m.get("min")); });
      show = () => {
        ["min", "max", "step"].forEach((k) => { input[k] = String(m.get(k)); });
        input.value = String(m.get(key));
        if (out) out.textContent = readout(c, m.get(key));
      };
    }
  }
  m.on("change", show);
  show();
  return m;
}

// jslink: both ways, each change saved (so a kernel trait asks); at the start the
// control's value goes to the view
function link(ctl, key, view, trait) {
  view.attrs[trait] = ctl.get(key);
  ctl.on(`change:${key}`, () => { view.set(trait, ctl.get(key)); view.save_changes(); });
  view.on(`change:${trait}`, () => ctl.set(key, view.get(trait)));
}

async function main() {
  const models = new Map();
  const manager = {
    async get_model(id) {
      if (models.has(id)) return models.get(id);
      throw new Error(`featviz static page: no widget ${id} here`);
    },
  };
  const view = new Model(putBuffers(page.state, page.buffers), manager, page.kernel_traits);
  page.controls.forEach((c) => {
    const ctl = control(c, view, byId("featviz-controls"));
    models.set(c.id, ctl);
    Object.entries(c.drives).forEach(([trait, how]) => link(ctl, how, view, trait));
  });
  const url = URL.createObjectURL(new Blob([page.esm], { type: "text/javascript" }));
  let mod;
  try { mod = await import(url); } finally { URL.revokeObjectURL(url); }
  const widget = mod.render ? { render: mod.render }
    : typeof mod.default === "function" ? await mod.default() : mod.default;
  const signal = new AbortController().signal;
  const experimental = { invoke: async () => { needsKernel(); throw new Error("no kernel in a saved page"); } };
  await widget.initialize?.({ model: view, signal, experimental });
  await widget.render?.({ model: view, el: byId("featviz-view"), signal, experimental });
  document.body.dataset.featvizReady = "1";
  // in a frame (the course site's), tell the page around it how tall this one is: the
  // content's own height (scrollHeight is never less than the frame, so it would not shrink)
  if (window.parent !== window) {
    const tell = () => window.parent.postMessage(
      { featviz: "height", height: Math.ceil(document.documentElement.getBoundingClientRect().height) }, "*");
    new ResizeObserver(tell).observe(document.body);
  }
}

main().catch((e) => {
  const box = byId("featviz-notice");
  box.textContent = `This page could not draw the widget: ${e && e.message ? e.message : e}`;
  box.hidden = false;
  box.classList.add("fvh-error");
  throw e;
});
