// The time-lapse block's script (roberta/ui/timelapse_view.py), run by Gradio's gr.HTML as
// its js_on_load: `element` is the block, `props.value` its JSON text (roberta/viz/timelapse.py's
// replay_data per run; parsed once per value), `watch` runs a function after it changed.
// Attention, the role counts and the map are canvases and the roles a table, redrawn in a few
// ms per snapshot (plotly took 100-200 ms a figure under load, even to move one line).
// Every element keeps its place for the page's life; a figure's redraw never mounts a new one.
const PLAY_MS = __PLAY_MS__, MAP_SCALE = __MAP_SCALE__;
const state = {index: 0, follow: true, playing: false, dirty: true, runs: null};
// For tests: the snapshot drawn, how long it took, how many snapshots each value held.
let parsedFrom, parsed = {};
const value = () => {
  if (props.value !== parsedFrom) {
    parsedFrom = props.value;
    try { parsed = typeof parsedFrom === 'string' && parsedFrom ? JSON.parse(parsedFrom) : {}; }
    catch (error) { parsed = {}; }
  }
  return parsed;
};
Object.assign(state, {seen: [], value});
element.robertaTimelapse = state;
const $ = s => element.querySelector(s);
const slider = $('.tl-slider'), play = $('.tl-play'), stepText = $('.tl-step');
const runsOf = () => value().runs || [];
const frames = () => Math.max(0, ...runsOf().map(r => r.steps.length));
const STOPS = [[0, [247, 251, 255]], [0.25, [198, 219, 239]], [0.5, [107, 174, 214]],
               [0.75, [33, 113, 181]], [1, [8, 48, 107]]];
const SHADE = Array.from({length: 101}, (_, p) => {
  const t = p / 100; let i = 0;
  while (t > STOPS[i + 1][0]) i++;
  const [a, ca] = STOPS[i], [b, cb] = STOPS[i + 1], f = (t - a) / (b - a);
  return 'rgb(' + ca.map((c, j) => Math.round(c + f * (cb[j] - c))).join(',') + ')';
});
const clip = (text, n) => text.length > n ? text.slice(0, n - 1) + '…' : text;

function canvas2d(canvas, height) {  // the canvas's pixels sized to its box, cleared
  const dpr = window.devicePixelRatio || 1, width = canvas.clientWidth;
  canvas.style.height = height + 'px';
  if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
  if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

function heatmap(canvas, a, frame, offset) {
  const T = a.tokens.length, width = canvas.clientWidth;
  const labelled = (width - 56) / T >= 10, left = labelled ? 56 : 0, bottom = labelled ? 46 : 0;
  const cell = (width - left) / T;
  const ctx = canvas2d(canvas, T * cell + bottom);
  for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) {
    ctx.fillStyle = SHADE[Math.max(0, Math.min(100, frame[offset + q * T + k]))];
    ctx.fillRect(left + k * cell, q * cell, Math.ceil(cell), Math.ceil(cell));
  }
  canvas.hover = {left, cell, T, frame, offset};
  if (!labelled) return;
  ctx.font = '10px sans-serif'; ctx.fillStyle = '#374151'; ctx.textAlign = 'right';
  for (let q = 0; q < T; q++) ctx.fillText(clip(a.tokens[q], 9), left - 3, q * cell + cell / 2 + 3);
  for (let k = 0; k < T; k++) {
    ctx.save(); ctx.translate(left + k * cell + cell / 2 + 3, T * cell + 4);
    ctx.rotate(-Math.PI / 3); ctx.fillText(clip(a.tokens[k], 9), 0, 0); ctx.restore();
  }
}

function drawMap(canvas, m, k) {
  const width = canvas.clientWidth, height = Math.min(420, Math.max(260, width * 0.7));
  const ctx = canvas2d(canvas, height), f = m.frames[k];
  const px = f.x.map(v => 6 + v / MAP_SCALE * (width - 12));
  const py = f.y.map(v => height - 6 - v / MAP_SCALE * (height - 12));
  ctx.fillStyle = 'rgba(37, 99, 235, 0.55)';
  for (let i = 0; i < px.length; i++) {
    ctx.beginPath(); ctx.arc(px[i], py[i], 2.5, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.font = '10px sans-serif'; ctx.fillStyle = '#374151'; ctx.textAlign = 'center';
  for (let i = 0; i < Math.min(m.labelled, px.length); i++) ctx.fillText(m.words[i], px[i], py[i] - 4);
  canvas.hover = {px, py, words: m.words};
}

function hoverText(event) {  // the hovered cell or word, in the canvas's tooltip
  const canvas = event.target, h = canvas.hover, r = canvas.getBoundingClientRect();
  if (!h) return;
  const x = event.clientX - r.left, y = event.clientY - r.top;
  if (h.words) {
    let best = -1, distance = 64;
    h.px.forEach((p, i) => { const d = (p - x) ** 2 + (h.py[i] - y) ** 2;
                             if (d < distance) { distance = d; best = i; } });
    canvas.title = best < 0 ? '' : h.words[best];
    return;
  }
  const q = Math.floor(y / h.cell), k = Math.floor((x - h.left) / h.cell);
  const tokens = canvas.tokens;
  canvas.title = q >= 0 && q < h.T && k >= 0 && k < h.T ? tokens[q] + ' → ' + tokens[k] + ': ' +
    h.frame[h.offset + q * h.T + k] + '%' : '';
}

function build(runs) {
  const box = $('.tl-runs');
  box.replaceChildren();
  for (const run of runs) {
    const a = run.attention, column = document.createElement('div');
    column.className = 'tl-run';
    column.innerHTML = '<div class="tl-title"></div><div class="tl-line"></div>' +
      '<div class="tl-probes"></div><div class="tl-grid"><div><div class="tl-caption">' +
      'Attention of the fixed sentence in every head (row: the token looking, column: the ' +
      'token looked at; darker: more)</div><div class="tl-sentence"></div>' +
      '<div class="tl-heads"></div></div><div><div class="tl-caption">The role each head ' +
      'plays</div><table class="tl-roles"></table><div class="tl-caption">How many heads ' +
      'play each role</div><canvas class="tl-counts"></canvas><div class="tl-legend"></div>' +
      '</div>' +
      '<div><div class="tl-caption">Embedding map: the most frequent words of the text ' +
      '(one projection for the whole run)</div><canvas class="tl-map"></canvas></div></div>';
    column.querySelector('.tl-title').textContent = run.title || '';
    column.querySelector('.tl-sentence').textContent = '“' + run.sentence + '”';
    const heads = column.querySelector('.tl-heads');
    heads.style.gridTemplateColumns = 'repeat(' + a.heads + ', minmax(0, 1fr))';
    for (let l = 0; l < a.layers; l++) for (let h = 0; h < a.heads; h++) {
      const head = document.createElement('div');
      head.className = 'tl-head';
      head.innerHTML = '<div class="tl-head-title"></div><canvas></canvas>';
      head.firstChild.textContent = 'layer ' + (l + 1) + ' · head ' + (h + 1);
      head.lastChild.tokens = a.tokens;
      head.lastChild.addEventListener('mousemove', hoverText);
      heads.appendChild(head);
    }
    const table = column.querySelector('.tl-roles');
    table.innerHTML = '<tr><th></th>' + Array.from({length: a.heads}, (_, h) =>
      '<th>head ' + (h + 1) + '</th>').join('') + '</tr>' + Array.from({length: a.layers},
      (_, l) => '<tr><th>layer ' + (l + 1) + '</th>' + '<td></td>'.repeat(a.heads) + '</tr>')
      .join('');
    column.querySelector('.tl-map').addEventListener('mousemove', hoverText);
    box.appendChild(column);
  }
  state.runs = layoutKey(runs);
}

// What the columns' elements depend on: a value with another key gets new ones.
const layoutKey = runs => JSON.stringify(runs.map(r => [r.title, r.sentence, r.attention.layers,
                                                        r.attention.heads, r.attention.tokens]));

function drawCounts(canvas, run, k) {  // a line per role over the run; a mark at step k
  const c = run.counts, width = canvas.clientWidth, height = 200;
  const legend = canvas.nextElementSibling, roles = Object.keys(c.lines).join();
  if (legend.dataset.roles !== roles) {  // a role that appears later in a run joins it
    legend.dataset.roles = roles;
    legend.replaceChildren(...Object.keys(c.lines).map(role => {
      const entry = document.createElement('span'), swatch = document.createElement('i');
      swatch.style.background = run.role_colors[role] || '#6b7280';
      entry.append(swatch, run.role_short[role] || role);
      return entry;
    }));
  }
  const left = 34, right = 8, top = 8, bottom = 30, ctx = canvas2d(canvas, height);
  const last = c.steps[c.steps.length - 1], first = c.steps[0], span = Math.max(1, last - first);
  const x = step => left + (step - first) / span * (width - left - right);
  const y = n => height - bottom - n / c.heads * (height - top - bottom);
  ctx.font = '10px sans-serif'; ctx.fillStyle = '#6b7280'; ctx.strokeStyle = '#e5e7eb';
  ctx.textAlign = 'right';
  const tick = Math.max(1, Math.ceil(c.heads / 4));
  for (let n = 0; n <= c.heads; n += tick) {
    ctx.beginPath(); ctx.moveTo(left, y(n)); ctx.lineTo(width - right, y(n)); ctx.stroke();
    ctx.fillText(String(n), left - 4, y(n) + 3);
  }
  ctx.textAlign = 'center';
  ctx.fillText(first.toLocaleString('en'), x(first), height - bottom + 12);
  ctx.fillText(last.toLocaleString('en'), x(last) - 10, height - bottom + 12);
  ctx.fillText('step', (left + width) / 2, height - 4);
  ctx.save(); ctx.translate(10, (top + height - bottom) / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillText('heads', 0, 0); ctx.restore();
  ctx.lineWidth = 2;
  for (const [role, counts] of Object.entries(c.lines)) {
    ctx.strokeStyle = run.role_colors[role] || '#6b7280';
    ctx.beginPath();
    counts.forEach((n, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(c.steps[i]), y(n)));
    ctx.stroke();
  }
  ctx.lineWidth = 1; ctx.strokeStyle = '#111827'; ctx.setLineDash([4, 3]);
  ctx.beginPath(); ctx.moveTo(x(c.steps[k]), top); ctx.lineTo(x(c.steps[k]), height - bottom);
  ctx.stroke(); ctx.setLineDash([]);
  canvas.title = 'step ' + c.steps[k].toLocaleString('en') + ': ' + Object.entries(c.lines)
    .map(([role, counts]) => (run.role_short[role] || role) + ' ' + counts[k]).join(', ');
}

function drawRun(column, run, index) {
  const k = Math.min(index, run.steps.length - 1), a = run.attention;
  column.querySelector('.tl-line').textContent = run.lines[k];
  column.querySelector('.tl-probes').innerHTML = run.probes[k];  // escaped server-side
  const frame = a.frames[k], T = a.tokens.length;
  column.querySelectorAll('.tl-head canvas').forEach((canvas, n) =>
    heatmap(canvas, a, frame, n * T * T));
  const cells = column.querySelectorAll('.tl-roles td');
  run.roles[k].flat().forEach((role, n) => {
    cells[n].textContent = run.role_short[role] || role;
    cells[n].style.background = run.role_colors[role] || '#9ca3af';
    cells[n].style.color = role === 'off' || role === 'mixed' ? '#111827' : 'white';
  });
  drawCounts(column.querySelector('.tl-counts'), run, k);
  drawMap(column.querySelector('.tl-map'), run.map, k);
}

function draw() {
  const runs = runsOf();
  if (!runs.length) return;
  if (!element.getClientRects().length) { state.dirty = true; return; }  // hidden tab
  const started = performance.now(), index = state.index;
  if (layoutKey(runs) !== state.runs) build(runs);
  const columns = element.querySelectorAll('.tl-run');
  runs.forEach((run, r) => drawRun(columns[r], run, index));
  Object.assign(state, {dirty: false, drawn: index, lastMs: performance.now() - started});
  element.dispatchEvent(new CustomEvent('tl-drawn', {detail: index}));
}

function show(index) {
  const n = frames(), runs = runsOf();
  state.index = Math.max(0, Math.min(index, n - 1));
  state.follow = state.index === n - 1;
  slider.value = state.index;
  stepText.textContent = runs.map(r => (runs.length > 1 ? (r.title || '').split(':')[0] + ' ' : '')
    + 'step ' + r.steps[Math.min(state.index, r.steps.length - 1)].toLocaleString('en'))
    .join(' · ') + '  (' + (state.index + 1) + ' of ' + n + ')';
  draw();
}

function stop() {
  state.playing = false;
  play.textContent = '▶ Play';
}

function tick() {
  if (!state.playing) return;
  if (state.index >= frames() - 1) { stop(); return; }
  show(state.index + 1);
  setTimeout(tick, PLAY_MS);
}

function update() {
  const n = frames();
  state.seen.push(n);
  $('.tl-message').textContent = value().message || '';
  $('.tl-controls').hidden = n === 0;
  slider.max = Math.max(0, n - 1);
  if (n === 0) {  // a new run (or a model without a time-lapse): start over
    $('.tl-runs').replaceChildren();
    Object.assign(state, {runs: null, index: 0, follow: true});
    stop();
    return;
  }
  show(state.follow || state.index > n - 1 ? n - 1 : state.index);
}

slider.addEventListener('input', () => { stop(); show(Number(slider.value)); });
play.addEventListener('click', () => {
  if (state.playing) { stop(); return; }
  state.playing = true;
  play.textContent = '⏸ Pause';
  if (state.index >= frames() - 1) show(0);
  setTimeout(tick, PLAY_MS);
});
let width = 0;  // the page's width changed: the canvases are drawn again at the new size
new ResizeObserver(() => {
  if (element.clientWidth !== width && frames()) { width = element.clientWidth; draw(); }
}).observe(element);
new IntersectionObserver(entries => {
  if (entries.some(e => e.isIntersecting) && state.dirty) draw();
}).observe(element);
update();
watch('value', update);
