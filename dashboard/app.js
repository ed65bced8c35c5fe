/*
 * pikv dashboard (served by every node at /). It reads only its own node:
 *   GET /v1/cluster?history=1   once, for the ring, every member and 10 minutes of samples
 *   GET /v1/events              then a `cluster` event a second (Server-Sent Events)
 * The node fetches the other members' summaries itself (src/node/observe/cluster-summary.ts),
 * so a browser that can reach one board sees the whole cluster. With a client token the page
 * asks for it once, keeps it in sessionStorage and sends it as Authorization: Bearer; the
 * stream is read with fetch() for that reason (EventSource cannot send headers).
 * Read-only: nothing here sends anything but GET.
 */
'use strict';

const HISTORY_S = 600;
const RECONNECT_MS = 2000;
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf', '#7f7f7f',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94'];
const TOKEN_KEY = 'pikv-client-token';

const state = {
  /** node id -> Map(second -> sample) */
  series: new Map(),
  /** node ids in colour order (sorted), fixed until the set changes */
  ids: [],
  charts: {},
  last: null,
};

function el(id) { return document.getElementById(id); }

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

function colorOf(id) {
  const index = state.ids.indexOf(id);
  return PALETTE[(index < 0 ? 0 : index) % PALETTE.length];
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(digits);
}

function mib(bytes) { return bytes ? `${(bytes / 1048576).toFixed(0)} MiB` : '–'; }

function setConnection(text, cls) {
  const pill = el('connection');
  pill.textContent = text;
  pill.className = `pill ${cls}`;
}

// ---- token ----

function askToken(message) {
  el('token-form').hidden = false;
  el('token-error').textContent = message || '';
  setConnection('needs token', 'lost');
}

el('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, el('token').value.trim());
  el('token-form').hidden = true;
  start();
});

// ---- data ----

function addSample(id, sample) {
  if (!sample) return;
  let map = state.series.get(id);
  if (!map) state.series.set(id, map = new Map());
  map.set(Math.round(sample.t_ms / 1000), sample);
  const oldest = Math.round(Date.now() / 1000) - HISTORY_S;
  for (const second of map.keys()) { if (second < oldest) map.delete(second); else break; }
}

function chartData(field, scale) {
  const seconds = new Set();
  for (const id of state.ids) for (const second of (state.series.get(id) || new Map()).keys()) seconds.add(second);
  const xs = [...seconds].sort((a, b) => a - b);
  const data = [xs];
  for (const id of state.ids) {
    const map = state.series.get(id) || new Map();
    data.push(xs.map((x) => { const s = map.get(x); return s && s[field] !== null && s[field] !== undefined ? s[field] * scale : null; }));
  }
  return data;
}

// ---- charts ----

const CHARTS = [
  { key: 'ops', el: 'chart-ops', field: 'ops_s', scale: 1 },
  { key: 'p99', el: 'chart-p99', field: 'p99_ms', scale: 1 },
  { key: 'mem', el: 'chart-mem', field: 'rss_bytes', scale: 1 / 1048576 },
  { key: 'opj', el: 'chart-opj', field: 'ops_per_joule', scale: 1 },
];

function chartWidth(target) { return Math.max(240, target.clientWidth); }

function buildCharts() {
  for (const spec of CHARTS) {
    const target = el(spec.el);
    if (state.charts[spec.key]) state.charts[spec.key].destroy();
    target.textContent = '';
    const series = [{}].concat(state.ids.map((id) => ({ label: id, stroke: colorOf(id), width: 2, spanGaps: false, points: { show: false } })));
    state.charts[spec.key] = new uPlot({
      width: chartWidth(target), height: 180, series,
      axes: [{ stroke: '#8b949e', grid: { stroke: '#30363d' } }, { stroke: '#8b949e', grid: { stroke: '#30363d' }, size: 60 }],
      scales: { x: { time: true } },
      legend: { live: false },
    }, chartData(spec.field, spec.scale), target);
  }
}

function updateCharts() {
  for (const spec of CHARTS) state.charts[spec.key]?.setData(chartData(spec.field, spec.scale));
}

window.addEventListener('resize', () => {
  for (const spec of CHARTS) state.charts[spec.key]?.setSize({ width: chartWidth(el(spec.el)), height: 180 });
});

// ---- ring ----

function polar(cx, cy, r, fraction) {
  const angle = fraction * 2 * Math.PI - Math.PI / 2;
  return [cx + r * Math.cos(angle), cy + r * Math.sin(angle)];
}

function arcPath(cx, cy, r_outer, r_inner, from, to) {
  const [x1, y1] = polar(cx, cy, r_outer, from);
  const [x2, y2] = polar(cx, cy, r_outer, to);
  const [x3, y3] = polar(cx, cy, r_inner, to);
  const [x4, y4] = polar(cx, cy, r_inner, from);
  const large = to - from > 0.5 ? 1 : 0;
  return `M${x1.toFixed(2)},${y1.toFixed(2)}A${r_outer},${r_outer} 0 ${large} 1 ${x2.toFixed(2)},${y2.toFixed(2)}` +
    `L${x3.toFixed(2)},${y3.toFixed(2)}A${r_inner},${r_inner} 0 ${large} 0 ${x4.toFixed(2)},${y4.toFixed(2)}Z`;
}

function renderRing(summary) {
  const ring = summary.ring;
  const target = el('ring');
  if (!ring) { target.textContent = 'no view yet'; return; }
  const down = new Set(summary.nodes.filter((n) => n.state === 'down').map((n) => n.node_id));
  const size = 300, c = size / 2, outer = 140, band = Math.min(28, 90 / ring.replicas);
  const sectors = ring.owners.length;
  const parts = [];
  for (let level = 0; level < ring.replicas; level++) {
    const r_outer = outer - level * (band + 3);
    const r_inner = r_outer - band;
    let start = 0;
    for (let i = 1; i <= sectors; i++) {
      const id = ring.owners[start][level];
      // Arcs end at the half-way sector too: an SVG arc cannot draw a whole circle.
      if (i < sectors && i !== sectors / 2 && ring.owners[i][level] === id) continue;
      if (id !== undefined) {
        const opacity = down.has(id) ? 0.3 : (level === 0 ? 1 : 0.7);
        parts.push(`<path data-node="${escapeHtml(id)}" data-level="${level}" d="${arcPath(c, c, r_outer, r_inner, start / sectors, i / sectors)}" fill="${colorOf(id)}" fill-opacity="${opacity}"${down.has(id) ? ' stroke="#f85149" stroke-width="1"' : ''}><title>${escapeHtml(id)} (${level === 0 ? 'primary' : `replica ${level + 1}`})</title></path>`);
      }
      start = i;
    }
  }
  parts.push(`<text x="${c}" y="${c - 4}" text-anchor="middle" fill="#e6e6e6" font-size="18">epoch ${summary.epoch}</text>`);
  parts.push(`<text x="${c}" y="${c + 16}" text-anchor="middle" fill="#8b949e" font-size="12">${summary.members.length} nodes · ${ring.replicas} ${ring.replicas === 1 ? 'copy' : 'copies'}</text>`);
  target.innerHTML = `<svg viewBox="0 0 ${size} ${size}" role="img" aria-label="hash ring">${parts.join('')}</svg>`;
  el('ring-caption').textContent = ring.replicas > 1 ? '(outer band: primary; inner bands: replicas)' : '';
  el('legend').innerHTML = summary.nodes.map((n) =>
    `<span data-node="${escapeHtml(n.node_id)}" data-state="${n.state}"><span class="swatch" style="background:${colorOf(n.node_id)}"></span>${escapeHtml(n.node_id)}${summary.joining.includes(n.node_id) ? ' (joining)' : ''}</span>`).join('');
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch]));
}

// ---- table and progress ----

function renderNodes(summary) {
  const rows = summary.nodes.map((n) => {
    const s = n.sample || {};
    const up = n.state !== 'down';
    const table_pct = n.bytes_capacity ? `${((n.bytes_used / n.bytes_capacity) * 100).toFixed(1)}%` : '–';
    return `<tr data-node="${escapeHtml(n.node_id)}" data-state="${n.state}" class="${up ? '' : 'down'}" title="${escapeHtml(n.reason || n.url)}">` +
      `<td><span class="swatch" style="background:${colorOf(n.node_id)}"></span>${escapeHtml(n.node_id)}</td>` +
      `<td class="state ${n.state}">${n.state.replace('_', ' ')}</td>` +
      `<td class="ops">${up ? fmt(s.ops_s) : '–'}</td><td>${up ? fmt(s.p50_ms, 2) : '–'}</td><td>${up ? fmt(s.p99_ms, 2) : '–'}</td>` +
      `<td>${up ? mib(n.rss_bytes) : '–'}</td><td>${up ? table_pct : '–'}</td><td>${up ? fmt(n.keys) : '–'}</td><td>${up ? fmt(n.ops_per_joule) : '–'}</td></tr>`;
  });
  el('nodes').tBodies[0].innerHTML = rows.join('');
  const live = summary.nodes.filter((n) => n.state !== 'down');
  const ops = live.reduce((sum, n) => sum + ((n.sample && n.sample.ops_s) || 0), 0);
  const watts = live.reduce((sum, n) => sum + (n.watts || 0), 0);
  const keys = live.reduce((sum, n) => sum + n.keys, 0);
  const rss = live.reduce((sum, n) => sum + n.rss_bytes, 0);
  el('nodes').tFoot.innerHTML = `<tr><td>cluster</td><td>${live.length}/${summary.nodes.length} up</td><td class="ops">${fmt(ops)}</td><td></td><td></td>` +
    `<td>${mib(rss)}</td><td></td><td>${fmt(keys)}</td><td>${watts > 0 ? fmt(ops / watts) : '–'}</td></tr>`;
  el('summary').textContent = `${summary.nodes.length} nodes · epoch ${summary.epoch} · ${fmt(ops)} ops/s · via ${summary.from}`;
  const profile = summary.nodes.find((n) => n.power_profile);
  if (profile) el('profile').textContent = profile.power_profile;
}

function renderProgress(summary) {
  const bars = [];
  for (const n of summary.nodes) {
    for (const p of n.progress || []) {
      const pct = p.total > 0 ? Math.min(100, (p.done / p.total) * 100) : 0;
      bars.push(`<div class="muted small">${escapeHtml(n.node_id)}: ${escapeHtml(p.what)} (${escapeHtml(p.state)})</div>` +
        `<div class="bar" data-node="${escapeHtml(n.node_id)}"><div style="width:${pct.toFixed(1)}%"></div><span>${fmt(p.done)} / ${fmt(p.total)}</span></div>`);
    }
  }
  el('progress').innerHTML = bars.length > 0 ? bars.join('') : '<p class="muted">nothing moving</p>';
  // etcd member boards (pikv etcd-form): until etcd has formed, say what each board waits for.
  const notes = summary.nodes.filter((n) => n.formation && n.formation.state !== 'running').map((n) =>
    `<p class="formation" data-node="${escapeHtml(n.node_id)}" data-formation="${escapeHtml(n.formation.state)}"><b>${escapeHtml(n.node_id)}</b>: etcd formation ${escapeHtml(n.formation.state)}${n.formation.reason ? `: ${escapeHtml(n.formation.reason)}` : ''}</p>`);
  el('formation').innerHTML = notes.join('');
  el('formation').hidden = notes.length === 0;
}

function render(summary) {
  state.last = summary;
  const ids = summary.nodes.map((n) => n.node_id).sort();
  const changed = ids.join('\n') !== state.ids.join('\n');
  if (changed) state.ids = ids;
  for (const n of summary.nodes) {
    if (n.history) for (const s of n.history) addSample(n.node_id, s);
    addSample(n.node_id, n.sample);
  }
  renderRing(summary);
  renderNodes(summary);
  renderProgress(summary);
  if (changed || !state.charts.ops) buildCharts(); else updateCharts();
  document.body.dataset.updated = String(summary.t_ms);
}

// ---- loading and the stream ----

async function start() {
  let response;
  try {
    response = await fetch('/v1/cluster?history=1', { headers: headers() });
  } catch (error) {
    setConnection('node unreachable', 'lost');
    setTimeout(start, RECONNECT_MS);
    return;
  }
  if (response.status === 401) { askToken(sessionStorage.getItem(TOKEN_KEY) ? 'that token was refused' : ''); return; }
  if (!response.ok) { setConnection(`HTTP ${response.status}`, 'lost'); setTimeout(start, RECONNECT_MS); return; }
  render(await response.json());
  stream();
}

async function stream() {
  try {
    const response = await fetch('/v1/events', { headers: { ...headers(), accept: 'text/event-stream' } });
    if (response.status === 401) { askToken('that token was refused'); return; }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    setConnection('live', 'live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (event === 'cluster' && data) render(JSON.parse(data));
      }
    }
  } catch (error) {
    // fall through to reconnect
  }
  setConnection('reconnecting', 'lost');
  setTimeout(stream, RECONNECT_MS);
}

start();
