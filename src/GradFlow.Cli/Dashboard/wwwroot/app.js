// GradFlow dashboard: follows run directories through the server's event streams (/api/events) and
// draws the loss, accuracy, per-layer signal, layer x step heatmap, through-time heatmap and verdicts.
// No library and nothing from the network: SVG line charts and canvas heatmaps written here.
'use strict';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const SVGNS = 'http://www.w3.org/2000/svg';
const tip = document.getElementById('tip');

// ---- numbers -------------------------------------------------------------------------------------
const num = v => (typeof v === 'number' ? v : v === null || v === undefined ? NaN : Number(v)); // "NaN", "Infinity" from the log
function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  return v !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3).replace(/\.?0+e/, 'e') : String(Number(v.toPrecision(4)));
}
function nice(x) {
  const e = Math.pow(10, Math.floor(Math.log10(x))), f = x / e;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * e;
}
// Round ticks (1, 2, 5 x 10^k) covering [lo, hi], as Svg.NiceTicks in the reports.
function niceTicks(lo, hi, target, integers) {
  if (hi === lo) { lo -= integers ? 1 : Math.max(Math.abs(lo) * 0.1, 0.5); hi += integers ? 1 : Math.max(Math.abs(hi) * 0.1, 0.5); }
  let step = nice((hi - lo) / Math.max(1, target - 1));
  if (integers) step = Math.max(1, step);
  const first = Math.floor(lo / step + 1e-9) * step, last = Math.ceil(hi / step - 1e-9) * step, ticks = [];
  for (let i = 0; i <= Math.round((last - first) / step); i++) ticks.push(Math.round((first + i * step) / step) * step);
  return ticks;
}
function tickLabel(v, spacing) {
  const d = Math.min(12, Math.max(0, -Math.floor(Math.log10(spacing) + 1e-9)));
  return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(1) : v.toFixed(d);
}
function viridis(t) {
  const s = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
  t = Math.min(1, Math.max(0, isFinite(t) ? t : 0)) * (s.length - 1);
  const i = Math.min(Math.floor(t), s.length - 2), f = t - i;
  return 'rgb(' + [0, 1, 2].map(k => Math.round(s[i][k] + (s[i + 1][k] - s[i][k]) * f)).join(',') + ')';
}
function el(tag, attrs, parent, ns) {
  const e = ns ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const k in attrs || {}) if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function showTip(text, x, y) { tip.textContent = text; tip.style.display = 'block'; tip.style.left = (x + 12) + 'px'; tip.style.top = (y + 12) + 'px'; }
function hideTip() { tip.style.display = 'none'; }

// ---- a line chart: hover values, drag to zoom, double-click to reset, optional log y -----------------
class LineChart {
  constructor(parent, opts) {
    this.o = Object.assign({ width: 500, height: 250, log: false }, opts);
    this.card = el('div', { class: 'card', 'data-chart': opts.id }, parent);
    const head = el('div', { class: 'head' }, this.card);
    el('span', { text: opts.title }, head);
    const label = el('label', {}, head);
    this.logBox = el('input', { type: 'checkbox' }, label);
    this.logBox.checked = this.o.log;
    label.appendChild(document.createTextNode(' log y'));
    this.logBox.addEventListener('change', () => this.draw());
    this.svg = el('svg', { width: this.o.width, height: this.o.height, class: 'chart' }, this.card, true);
    this.legend = el('div', { class: 'legend' }, this.card);
    this.series = [];
    this.zoom = null;
    this.hookEvents();
  }
  update(series) { this.series = series; this.draw(); }
  visible() {
    const log = this.logBox.checked, z = this.zoom;
    return this.series.map(s => ({ s, pts: s.points.filter(p => isFinite(p[0]) && isFinite(p[1]) && (!log || p[1] > 0) && (!z || (p[0] >= z[0] && p[0] <= z[1]))) }));
  }
  draw() {
    const { width: W, height: H } = this.o, L = 58, R = 12, T = 8, B = 36, log = this.logBox.checked, svg = this.svg;
    svg.textContent = '';
    this.legend.textContent = '';
    for (const s of this.series) {
      const span = el('span', {}, this.legend);
      el('i', { style: `border-top:3px ${s.dash ? 'dashed' : 'solid'} ${s.color}` }, span);
      span.appendChild(document.createTextNode(s.label));
    }
    const vis = this.visible(), all = vis.flatMap(v => v.pts);
    this.frame = null;
    if (all.length === 0) { el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis', text: 'waiting for data' }, svg, true); return; }
    const tr = y => (log ? Math.log10(y) : y);
    const xs = all.map(p => p[0]), ys = all.map(p => tr(p[1]));
    const integers = xs.every(x => x === Math.round(x));
    // the x axis spans the data (or the zoom); its ticks are the round values inside
    let x0 = this.zoom ? this.zoom[0] : Math.min(...xs), x1 = this.zoom ? this.zoom[1] : Math.max(...xs);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    const xt = niceTicks(x0, x1, 6, integers).filter(t => t >= x0 - 1e-9 * (x1 - x0) && t <= x1 + 1e-9 * (x1 - x0));
    let yt;
    if (log) {
      let lo = Math.floor(Math.min(...ys)), hi = Math.ceil(Math.max(...ys));
      if (hi === lo) hi = lo + 1;
      const st = Math.max(1, Math.ceil((hi - lo) / 8));
      yt = [];
      for (let v = lo; v < hi + st; v += st) yt.push(v);
    } else yt = niceTicks(Math.min(...ys), Math.max(...ys), 5, false);
    const y0 = yt[0], y1 = yt[yt.length - 1], pw = W - L - R, ph = H - T - B;
    const X = x => L + (x - x0) / (x1 - x0) * pw, Y = y => T + ph - (tr(y) - y0) / (y1 - y0) * ph;
    this.frame = { X, Y, L, T, pw, ph, x0, x1 };
    el('rect', { x: L, y: T, width: pw, height: ph, class: 'plot' }, svg, true);
    const ys1 = yt.length > 1 ? yt[1] - yt[0] : 1, xs1 = xt.length > 1 ? xt[1] - xt[0] : integers ? 1 : Math.abs(x1 - x0);
    for (const v of yt) {
      const py = T + ph - (v - y0) / (y1 - y0) * ph;
      el('line', { x1: L, x2: L + pw, y1: py, y2: py, class: 'grid' }, svg, true);
      el('text', { x: L - 5, y: py + 4, 'text-anchor': 'end', class: 'tick', text: log ? '1e' + Math.round(v) : tickLabel(v, ys1) }, svg, true);
    }
    for (const v of xt) el('text', { x: X(v), y: T + ph + 14, 'text-anchor': 'middle', class: 'tick', text: tickLabel(v, xs1) }, svg, true);
    el('text', { x: L + pw / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis', text: this.o.xLabel }, svg, true);
    el('text', { x: 12, y: T + ph / 2, 'text-anchor': 'middle', class: 'axis', transform: `rotate(-90 12 ${T + ph / 2})`, text: this.o.yLabel }, svg, true);
    for (const { s, pts } of vis) {
      if (pts.length === 0) continue;
      el('polyline', { fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': s.dash ? '6 4' : 'none', points: pts.map(p => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ') }, svg, true);
      if (pts.length <= 300 || s.marks)
        for (const p of pts) el('circle', { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: pts.length <= 60 ? 3 : 1.5, fill: s.dash ? '#fff' : s.color, stroke: s.color, class: 'pt' }, svg, true);
    }
    this.marker = el('circle', { r: 5, fill: 'none', stroke: '#000', 'stroke-width': 1.5, visibility: 'hidden' }, svg, true);
    this.band = el('rect', { y: T, height: ph, fill: 'rgba(31,119,180,0.15)', visibility: 'hidden' }, svg, true);
  }
  nearest(mx, my) {
    const f = this.frame;
    let best = null, bd = Infinity;
    for (const { s, pts } of this.visible())
      for (const p of pts) {
        const d = Math.hypot(f.X(p[0]) - mx, f.Y(p[1]) - my);
        if (d < bd) { bd = d; best = { s, p }; }
      }
    return bd < 40 ? best : null;
  }
  hookEvents() {
    const pos = e => { const r = this.svg.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    let drag = null;
    this.svg.addEventListener('mousemove', e => {
      if (!this.frame) return;
      const [mx, my] = pos(e), f = this.frame;
      if (drag !== null) {
        this.band.setAttribute('x', Math.min(drag, mx)); this.band.setAttribute('width', Math.abs(mx - drag)); this.band.setAttribute('visibility', 'visible');
      }
      const n = this.nearest(mx, my);
      if (!n) { hideTip(); this.marker.setAttribute('visibility', 'hidden'); return; }
      this.marker.setAttribute('cx', f.X(n.p[0])); this.marker.setAttribute('cy', f.Y(n.p[1])); this.marker.setAttribute('visibility', 'visible');
      showTip(`${n.s.label}: ${this.o.xLabel} ${fmt(n.p[0])}, ${this.o.yLabel} ${fmt(n.p[1])}`, e.pageX, e.pageY);
    });
    this.svg.addEventListener('mouseleave', () => { hideTip(); drag = null; if (this.band) this.band.setAttribute('visibility', 'hidden'); });
    this.svg.addEventListener('mousedown', e => { if (this.frame) { drag = pos(e)[0]; e.preventDefault(); } });
    this.svg.addEventListener('mouseup', e => {
      if (drag === null || !this.frame) return;
      const mx = pos(e)[0], f = this.frame, a = Math.min(drag, mx), b = Math.max(drag, mx);
      drag = null;
      if (b - a < 6) { this.band.setAttribute('visibility', 'hidden'); return; }
      const toX = px => f.x0 + (px - f.L) / f.pw * (f.x1 - f.x0);
      this.zoom = [toX(a), toX(b)];
      this.draw();
    });
    this.svg.addEventListener('dblclick', () => { this.zoom = null; this.draw(); });
  }
}

// ---- a heatmap of log10 values on a canvas, with hover values ------------------------------------------
class Heatmap {
  constructor(parent, opts) {
    this.o = opts;
    this.card = el('div', { class: 'card', 'data-heatmap': opts.id }, parent);
    el('div', { class: 'head', text: opts.title }, this.card);
    this.canvas = el('canvas', {}, this.card);
    this.note = el('div', { class: 'muted small' }, this.card);
    this.canvas.addEventListener('mousemove', e => this.hover(e));
    this.canvas.addEventListener('mouseleave', hideTip);
  }
  // rows: labels top to bottom; cols: labels; values[r][c] (NaN: no value, non-finite: magenta, exactly 0: black, as in the report)
  update(rows, cols, values) {
    this.rows = rows; this.cols = cols; this.values = values;
    this.card.setAttribute('data-columns', cols.length);
    this.card.setAttribute('data-rows', rows.length);
    const rh = Math.max(12, Math.min(32, Math.floor(160 / Math.max(1, rows.length))));
    const cw = Math.max(1, Math.min(24, 900 / Math.max(1, cols.length)));
    const left = 40, top = 4, W = Math.ceil(left + cols.length * cw + 90), H = top + rows.length * rh + 34;
    this.g = { rh, cw, left, top };
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    c.width = W * dpr; c.height = Math.max(H, 144) * dpr; c.style.width = W + 'px'; c.style.height = Math.max(H, 144) + 'px';
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    let lo = Infinity, hi = -Infinity;
    for (const row of values) for (const v of row) if (isFinite(v) && v > 0) { const l = Math.log10(v); lo = Math.min(lo, l); hi = Math.max(hi, l); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    lo = Math.floor(lo); hi = Math.ceil(hi); if (hi - lo < 1) hi = lo + 1;
    for (let r = 0; r < rows.length; r++)
      for (let k = 0; k < cols.length; k++) {
        const v = values[r][k];
        ctx.fillStyle = Number.isNaN(v) ? '#eeeeee' : !isFinite(v) ? '#ff00ff' : v <= 0 ? '#000000' : viridis((Math.log10(v) - lo) / (hi - lo));
        ctx.fillRect(left + k * cw, top + r * rh, Math.ceil(cw), rh);
      }
    ctx.fillStyle = '#555'; ctx.font = '10px system-ui, sans-serif'; ctx.textAlign = 'right';
    const every = Math.ceil(12 / rh);
    for (let r = 0; r < rows.length; r += every) ctx.fillText(rows[r], left - 5, top + r * rh + rh / 2 + 4);
    ctx.textAlign = 'center';
    const step = Math.max(1, Math.ceil(56 / cw));
    for (let k = 0; k < cols.length; k += step) ctx.fillText(cols[k], left + k * cw + cw / 2, top + rows.length * rh + 13);
    ctx.fillText(this.o.colLabel, left + cols.length * cw / 2, top + rows.length * rh + 28);
    const lx = left + cols.length * cw + 14;
    for (let i = 0; i < 10; i++) { ctx.fillStyle = viridis(i / 9); ctx.fillRect(lx, top + (9 - i) * 10, 12, 10); }
    ctx.fillStyle = '#555'; ctx.textAlign = 'left';
    ctx.fillText('1e' + hi, lx + 16, top + 9); ctx.fillText('1e' + lo, lx + 16, top + 100);
    ctx.fillStyle = '#ff00ff'; ctx.fillRect(lx, top + 110, 12, 10); ctx.fillStyle = '#555'; ctx.fillText('non-finite', lx + 16, top + 119);
    ctx.fillStyle = '#000000'; ctx.fillRect(lx, top + 124, 12, 10); ctx.fillStyle = '#555'; ctx.fillText('0', lx + 16, top + 133);
  }
  hover(e) {
    if (!this.g) return;
    const r0 = this.canvas.getBoundingClientRect(), x = e.clientX - r0.left, y = e.clientY - r0.top, g = this.g;
    const k = Math.floor((x - g.left) / g.cw), r = Math.floor((y - g.top) / g.rh);
    if (k < 0 || r < 0 || k >= this.cols.length || r >= this.rows.length) { hideTip(); return; }
    showTip(`${this.o.rowLabel} ${this.rows[r]}, ${this.o.colLabel} ${this.cols[k]}: ${fmt(this.values[r][k])}`, e.pageX, e.pageY);
  }
}

// ---- a run followed through its event stream -------------------------------------------------------------
class RunFeed {
  constructor(id, onChange) {
    this.id = id; this.steps = []; this.epochs = []; this.verdict = null; this.config = null;
    this.source = new EventSource('api/events?run=' + encodeURIComponent(id));
    this.source.addEventListener('config', e => { this.config = JSON.parse(e.data); onChange(); });
    // the run was started over: what was shown belongs to the old run
    this.source.addEventListener('reset', () => { this.steps = []; this.epochs = []; this.verdict = null; this.config = null; onChange(); });
    this.source.addEventListener('lines', e => {
      for (const line of JSON.parse(e.data)) {
        if (line.type === 'step') this.steps.push(line);
        else if (line.type === 'epoch') this.epochs.push(line); // the watch line is the server's (the live verdict's facts)
      }
      onChange();
    });
    this.source.addEventListener('verdict', e => { this.verdict = JSON.parse(e.data); onChange(); });
  }
  close() { this.source.close(); }
}

let feeds = [], scheduled = false, current = null;
function schedule(render) {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => { scheduled = false; render(); });
}
function closeFeeds() { feeds.forEach(f => f.close()); feeds = []; }

function verdictHtml(box, v) {
  box.textContent = '';
  if (!v) { el('div', { class: 'verdict', text: 'no verdict yet: the monitor has not sampled (train with --monitor)' }, box); return; }
  const d = v.diagnosis, when = v.final ? 'final diagnosis' : 'diagnosis of the samples so far';
  if (d.healthy) { el('div', { class: 'verdict', text: `${when}: healthy (gradient ratio ${fmt(num(d.gradient_ratio))}, ${d.samples} samples)` }, box); return; }
  for (const p of d.problems) {
    const div = el('div', { class: 'verdict problem' }, box);
    el('b', { text: `${p.kind}: ` }, div);
    div.appendChild(document.createTextNode(p.summary + ` (${when})`));
    if (p.remedies && p.remedies.length) {
      const ul = el('ul', {}, div);
      for (const r of p.remedies.slice(0, 3)) el('li', { text: `[${r.id}] ${r.description}` }, ul);
    }
  }
}

// The view of one run.
function showRun(id) {
  closeFeeds();
  const view = document.getElementById('view');
  view.textContent = '';
  el('h2', { text: id }, view);
  const info = el('div', { class: 'muted small' }, view);
  const verdict = el('div', { id: 'verdicts' }, view);
  const grid = el('div', { class: 'grid' }, view);
  const loss = new LineChart(grid, { id: 'loss', title: 'loss', xLabel: 'step', yLabel: 'loss' });
  const acc = new LineChart(grid, { id: 'accuracy', title: 'accuracy per epoch', xLabel: 'step', yLabel: 'accuracy' });
  const signal = new LineChart(grid, { id: 'signal', title: 'backpropagated signal RMS per layer (1 = input side)', xLabel: 'layer', yLabel: 'RMS of dL/dh', log: true });
  const ratio = new LineChart(grid, { id: 'ratio', title: 'gradient ratio (signal at layer 1 / at layer L)', xLabel: 'step', yLabel: 'ratio', log: true });
  const heat = new Heatmap(view, { id: 'layers', title: 'signal RMS, layer x sampled step (log10)', rowLabel: 'layer', colLabel: 'step' });
  const time = new Heatmap(view, { id: 'time', title: 'signal through time / last step\'s, recurrent layer x time step (latest sample)', rowLabel: 'layer', colLabel: 'time step' });
  time.card.style.display = 'none';
  const feed = new RunFeed(id, () => schedule(render));
  feeds.push(feed);
  function render() {
    const st = feed.steps, ep = feed.epochs, last = st[st.length - 1];
    info.textContent = `${st.length} monitor samples, ${ep.length} epochs` + (last ? `, last sample at step ${last.step}` : '') + (feed.config ? ` · model ${feed.config.model}` : '');
    verdictHtml(verdict, feed.verdict);
    loss.update([
      { label: 'training loss (mean since the previous sample)', color: PALETTE[0], points: st.map(s => [s.step, isFinite(num(s.mean_loss)) ? num(s.mean_loss) : num(s.loss)]) },
      { label: 'train, per epoch', color: PALETTE[2], points: ep.map(e => [e.step, num(e.train_loss)]), marks: true },
      { label: 'test, per epoch', color: PALETTE[1], dash: true, points: ep.map(e => [e.step, num(e.test_loss)]), marks: true },
    ]);
    const hasAcc = ep.some(e => isFinite(num(e.train_accuracy)));
    acc.card.style.display = hasAcc ? '' : 'none';
    if (hasAcc) acc.update([
      { label: 'train', color: PALETTE[0], points: ep.map(e => [e.step, num(e.train_accuracy)]) },
      { label: 'test', color: PALETTE[1], dash: true, points: ep.map(e => [e.step, num(e.test_accuracy)]) },
    ]);
    if (st.length > 0) {
      const first = st[0];
      signal.update([
        { label: `step ${first.step}`, color: PALETTE[3], points: first.layers.map(l => [l.layer, num(l.signal_rms)]) },
        { label: `step ${last.step} (latest)`, color: PALETTE[0], points: last.layers.map(l => [l.layer, num(l.signal_rms)]) },
      ]);
      ratio.update([{ label: 'gradient ratio', color: PALETTE[4], points: st.map(s => [s.step, num(s.gradient_ratio)]) }]);
      const n = last.layers.length, shown = st.length <= 450 ? st : Array.from({ length: 450 }, (_, i) => st[Math.floor(i * (st.length - 1) / 449)]);
      const rows = Array.from({ length: n }, (_, r) => String(n - r));
      heat.update(rows, shown.map(s => String(s.step)), rows.map((_, r) => shown.map(s => {
        const l = s.layers[n - 1 - r];
        return l ? (l.signal_rms === 'NaN' && l.non_finite > 0 ? Infinity : num(l.signal_rms)) : NaN;
      })));
      const ts = last.time_signal;
      if (ts && ts.length > 0 && ts[ts.length - 1].length >= 2) {
        time.card.style.display = '';
        const T = ts[ts.length - 1].length, cols = Math.min(200, T);
        const binned = ts.slice().reverse().map(sig => {
          const top = num(sig[sig.length - 1]), out = [];
          for (let c = 0; c < cols; c++) {
            const a = Math.floor(c * sig.length / cols), b = Math.floor((c + 1) * sig.length / cols);
            let sum = 0, k = 0;
            for (let t = a; t < b; t++) { sum += Math.log10(Math.max(1e-30, Math.min(num(sig[t]) / top, 1e30))); k++; }
            out.push(k ? Math.pow(10, sum / k) : NaN);
          }
          return out;
        });
        time.update(ts.map((_, k) => String(ts.length - k)), Array.from({ length: cols }, (_, c) => String(Math.floor(c * T / cols) + 1)), binned);
      }
    }
  }
  render();
}

// The comparison of several runs: loss and final signal per layer overlaid, final numbers side by side.
function showCompare(ids) {
  closeFeeds();
  const view = document.getElementById('view');
  view.textContent = '';
  el('h2', { text: 'comparison: ' + ids.join(' vs ') }, view);
  const table = el('table', {}, view);
  const grid = el('div', { class: 'grid' }, view);
  const loss = new LineChart(grid, { id: 'compare-loss', title: 'training loss', xLabel: 'step', yLabel: 'loss' });
  const test = new LineChart(grid, { id: 'compare-test', title: 'test loss per epoch', xLabel: 'step', yLabel: 'test loss' });
  const signal = new LineChart(grid, { id: 'compare-signal', title: 'signal RMS per layer, latest sample', xLabel: 'layer', yLabel: 'RMS of dL/dh', log: true });
  feeds = ids.map(id => new RunFeed(id, () => schedule(render)));
  function render() {
    table.textContent = '';
    const h = el('tr', {}, table);
    for (const t of ['run', 'epochs', 'test loss', 'test accuracy', 'gradient ratio', 'verdict']) el('th', { text: t }, h);
    feeds.forEach(f => {
      const tr = el('tr', {}, table), e = f.epochs[f.epochs.length - 1], s = f.steps[f.steps.length - 1], d = f.verdict && f.verdict.diagnosis;
      const cells = [f.id, f.epochs.length, e ? fmt(num(e.test_loss)) : '-', e && isFinite(num(e.test_accuracy)) ? (num(e.test_accuracy) * 100).toFixed(1) + ' %' : '-',
        s ? fmt(num(s.gradient_ratio)) : '-', d ? (d.healthy ? 'healthy' : d.problems.map(p => p.kind).join(', ')) : '-'];
      for (const c of cells) el('td', { text: String(c) }, tr);
    });
    const color = i => PALETTE[i % PALETTE.length];
    loss.update(feeds.map((f, i) => ({ label: f.id, color: color(i), points: f.steps.map(s => [s.step, isFinite(num(s.mean_loss)) ? num(s.mean_loss) : num(s.loss)]) })));
    test.update(feeds.map((f, i) => ({ label: f.id, color: color(i), dash: true, points: f.epochs.map(e => [e.step, num(e.test_loss)]), marks: true })));
    signal.update(feeds.filter(f => f.steps.length).map((f, i) => ({ label: f.id, color: color(i), points: f.steps[f.steps.length - 1].layers.map(l => [l.layer, num(l.signal_rms)]) })));
  }
  render();
}

// ---- the run list and navigation -------------------------------------------------------------------------
async function loadRuns() {
  const runs = await (await fetch('api/runs')).json(), box = document.getElementById('runs');
  const checked = new Set([...box.querySelectorAll('input:checked')].map(i => i.value));
  box.textContent = '';
  if (runs.length === 0) el('p', { class: 'muted', text: 'no run directories here yet' }, box);
  const now = Date.now();
  for (const r of runs) {
    const row = el('div', {}, box);
    const cb = el('input', { type: 'checkbox', value: r.id }, row);
    cb.checked = checked.has(r.id);
    cb.addEventListener('change', updateCompare);
    const a = el('a', { href: '#run=' + encodeURIComponent(r.id), text: r.id, title: r.path }, row);
    if (current === 'run=' + r.id) a.classList.add('active');
    const live = !r.finished && now - Date.parse(r.updated) < 15000;
    el('span', { class: 'badge' + (live ? ' live' : ''), text: live ? 'training' : r.finished ? (r.stop === 'Cancelled' ? 'stopped' : 'done') : 'idle' }, row);
  }
  document.getElementById('status').textContent = `${runs.length} run${runs.length === 1 ? '' : 's'}`;
  updateCompare();
}
function updateCompare() {
  document.getElementById('compare').disabled = document.querySelectorAll('#runs input:checked').length < 2;
}
document.getElementById('compare').addEventListener('click', () => {
  location.hash = 'compare=' + [...document.querySelectorAll('#runs input:checked')].map(i => encodeURIComponent(i.value)).join(',');
});
function route() {
  const h = location.hash.slice(1);
  current = h;
  if (h.startsWith('run=')) showRun(decodeURIComponent(h.slice(4)));
  else if (h.startsWith('compare=')) showCompare(h.slice(8).split(',').map(decodeURIComponent));
  loadRuns();
}
window.addEventListener('hashchange', route);
route();
setInterval(loadRuns, 3000);
