/* Keel dashboard: one page, no framework, nothing fetched but this hub's
 * own routes; the charts are Chart.js (Debian's libjs-chart.js), compiled
 * into keeld beside this file.
 *
 * Live updates by polling /api/dashboard once a second rather than
 * server-sent events: polling is simple, passes through every proxy, and
 * holds no long-lived connection per viewer, which matters because the
 * hub's HTTP server runs a thread per connection; the hub builds the
 * document at most once a second for all viewers together.  The charts
 * read /api/history (the hub's stored series) every few seconds, only for
 * the view on screen.
 *
 * When the hub stops answering, every view is greyed and the header says
 * since when the figures are: an operator must never read old figures as
 * current.  Two failed polls in a row make it stale, so one dropped
 * request does not flash the page.
 *
 * Rendering stays fast with a thousand agents: each table is built as one
 * string and set with one innerHTML (never a node per cell), only the
 * visible view is rendered, and a table whose HTML did not change is not
 * touched at all.  Every value from the services is escaped: agent names
 * and error messages come from other processes.  Nothing here writes an
 * inline style or script, so the page runs under `default-src 'self'`. */
'use strict';

const POLL_MS = 1000;
const HISTORY_MS = 5000;
const STALE_AFTER = 2;
const TOKEN_KEY = 'keel.token';
const RANGES = { '15m': 900, '1h': 3600, '24h': 86400 };
const TICK_MS = { '15m': 120000, '1h': 600000, '24h': 10800000 };
const SERVICES = ['core', 'resource', 'observability', 'errorbus', 'security'];
const SERVICE_TITLES = { core: 'CoreOrchestrator', resource: 'ResourceManager', observability: 'ObservabilityHub',
                         errorbus: 'ErrorBus', security: 'SecurityGateway' };
const LEVELS = ['critical', 'error', 'warning', 'info', 'debug'];
const COLORS = { core: '#58a6ff', resource: '#d29922', observability: '#3fb950', errorbus: '#f85149',
                 security: '#bc8cff', critical: '#ff7b72', error: '#f85149', warning: '#d29922',
                 info: '#3fb950', debug: '#8a96a6', latency: '#58a6ff', failures: '#f85149' };
const state = { view: 'fleet', data: null, agent: null, agentData: null, filter: '', failures: 0,
                lastOk: null, range: '15m', history: null, historyKey: '', historyAt: 0 };
const painted = new Map();
const charts = new Map();

const $ = (id) => document.getElementById(id);

function esc(value) {
  return String(value === undefined || value === null ? '' : value)
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/* Sets an element's HTML only when it changed. */
function paint(id, html) {
  if (painted.get(id) === html) return;
  painted.set(id, html);
  $(id).innerHTML = html;
}

function num(value, digits) {
  return typeof value === 'number' && isFinite(value) ? value.toFixed(digits) : '–';
}

/* ---- times: 24-hour, with the date, in the browser's time zone ------------------ */

const pad = (n) => String(n).padStart(2, '0');
const dayOf = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const clockOf = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

/* Unix seconds, the hub's local ISO text, or SQLite's CURRENT_TIMESTAMP
 * (UTC, "YYYY-MM-DD HH:MM:SS") into a Date; null when none. */
function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return new Date(value * 1000);
  const text = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(value) ? value.replace(' ', 'T') + 'Z' : value;
  const d = new Date(text);
  return isNaN(d) ? null : d;
}

function when(value) {
  const d = toDate(value);
  return d ? `${dayOf(d)} ${clockOf(d)}` : esc(value || '–');
}

function card(label, value, cls) {
  return `<div class="card ${cls || ''}"><div class="label">${esc(label)}</div>` +
         `<div class="value">${esc(value)}</div></div>`;
}

function empty(cols, text) {
  return `<tr><td colspan="${cols}" class="dim">${esc(text)}</td></tr>`;
}

/* ---- the one place the hub's agent state is read ----------------------------------- */

/* The hub's combined state of an agent and why: every view, sort and count
 * reads it here, so a change in the hub's field names is one change. */
function agentState(a) {
  return { word: a.state || 'unknown', reason: a.state_reason || a.reason || a.error || '' };
}

/* ---- tokens and actions ---------------------------------------------------- */

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function notice(text, ok) {
  const el = $('notice');
  el.textContent = text;
  el.className = ok ? 'ok' : 'error';
  el.hidden = false;
}

async function act(path, body, done) {
  const headers = { 'Content-Type': 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  let res;
  try {
    res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    notice('Request failed: ' + e.message, false);
    return false;
  }
  let reply = {};
  try { reply = await res.json(); } catch (e) { reply = {}; }
  if (res.status === 401 || res.status === 403) {
    notice(`Refused (${res.status}): an administrator's token is required.`, false);
    return false;
  }
  if (!res.ok) {
    notice(`Failed (${res.status}): ${reply.error || reply.message || reply.detail || 'error'}`, false);
    return false;
  }
  notice(reply.message || done, true);
  return true;
}

function restart(name) {
  if (name && window.confirm(`Restart ${name}?`))
    act('/api/restart', { agent_name: name }, `Restart of ${name} requested.`).then(poll);
}

/* ---- charts -------------------------------------------------------------------- */

/* [[unix s, value], ...] as chart points, with a break where three steps
 * or more are missing (a hub that was down draws no line across the gap;
 * a sweep slower than the step, which leaves a step empty now and then,
 * does not break the line). */
function points(series, step) {
  const out = [];
  let last = null;
  for (const [t, v] of series || []) {
    if (last !== null && t - last > step * 3.5) out.push({ x: (last + step) * 1000, y: null });
    out.push({ x: t * 1000, y: v });
    last = t;
  }
  return out;
}

function timeTitle(from, to) {
  const a = dayOf(from), b = dayOf(to);
  return `Time, 24-hour (${a === b ? a : a + ' to ' + b})`;
}

/* Ticks on round local times (every 2 min, 10 min or 3 h), which Chart.js's
 * numeric ticks would not give. */
function timeTicks(min, max, step) {
  const offset = new Date(min).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((min - offset) / step) * step + offset; t <= max; t += step) ticks.push({ value: t });
  return ticks;
}

/* A line chart of one or more series over the chosen range: a time axis
 * that always spans the whole range, a value axis from zero with its
 * quantity and unit, one colour per series. */
function drawChart(id, yTitle, lines, step, yMax) {
  const canvas = $(id);
  if (!canvas || typeof Chart === 'undefined') return;
  const to = new Date(), from = new Date(to.getTime() - RANGES[state.range] * 1000);
  const datasets = lines.map((l) => ({
    label: l.label, data: points(l.series, step), borderColor: l.color, backgroundColor: l.color,
    borderWidth: 1.5, pointRadius: 0, pointHitRadius: 6, spanGaps: false,
  }));
  let chart = charts.get(id);
  if (chart && chart.canvas !== canvas) {
    chart.destroy();
    chart = null;
  }
  const x = {
    type: 'linear', min: from.getTime(), max: to.getTime(),
    title: { display: true, text: timeTitle(from, to) },
    afterBuildTicks: (axis) => { axis.ticks = timeTicks(axis.min, axis.max, TICK_MS[state.range]); },
    ticks: { maxRotation: 0, autoSkip: true,
             callback: (v) => { const d = new Date(v); return `${pad(d.getHours())}:${pad(d.getMinutes())}`; } },
  };
  const y = { type: 'linear', min: 0, max: yMax, beginAtZero: true, title: { display: true, text: yTitle },
              ticks: { maxTicksLimit: 6 } };
  if (!chart) {
    chart = new Chart(canvas, {
      type: 'line', data: { datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: {
          legend: { display: lines.length > 1, position: 'bottom', labels: { boxWidth: 12 } },
          tooltip: { callbacks: { title: (items) => when(items[0].parsed.x / 1000) } },
        },
        scales: { x, y },
      },
    });
    charts.set(id, chart);
  } else {
    chart.data.datasets = datasets;
    chart.options.scales.x = x;
    chart.options.scales.y = y;
    chart.options.plugins.legend.display = lines.length > 1;
    chart.update('none');
  }
}

async function loadHistory(force) {
  const agent = state.view === 'agent' ? state.agent : null;
  if (!['agent', 'keel', 'errors'].includes(state.view) || (state.view === 'agent' && !agent)) return;
  const key = `${state.range}|${agent || ''}`;
  if (!force && key === state.historyKey && Date.now() - state.historyAt < HISTORY_MS) return;
  try {
    const res = await fetch(`/api/history?range=${state.range}` + (agent ? '&agent=' + encodeURIComponent(agent) : ''),
                            { cache: 'no-store' });
    if (!res.ok) return;
    state.history = await res.json();
    state.historyKey = key;
    state.historyAt = Date.now();
  } catch (e) {
    return;
  }
  renderCharts();
}

function renderCharts() {
  const h = state.history;
  if (!h || !h.series) return;
  const s = h.series, step = h.step_s;
  if (state.view === 'agent' && state.agent) {
    drawChart('chart-agent-latency', 'latency (ms)',
              [{ label: 'latency', series: s[`agent/${state.agent}/latency_ms`], color: COLORS.latency }], step);
    drawChart('chart-agent-errors', 'failed (%)',
              [{ label: 'failed', series: s[`agent/${state.agent}/error_pct`], color: COLORS.failures }], step, 100);
  } else if (state.view === 'keel') {
    const lines = (figure) => SERVICES.map((n) => ({ label: SERVICE_TITLES[n], series: s[`service/${n}/${figure}`],
                                                     color: COLORS[n] }));
    drawChart('chart-keel-requests', 'requests/s', lines('requests_per_s'), step);
    drawChart('chart-keel-p99', 'p99 (ms)', lines('p99_ms'), step);
    drawChart('chart-keel-errors', 'errors/s', lines('errors_per_s'), step);
    const last = (series) => (series && series.length ? series[series.length - 1] : null);
    paint('keel-body', SERVICES.map((n) => {
      const r = last(s[`service/${n}/requests_per_s`]), p = last(s[`service/${n}/p99_ms`]);
      const e = last(s[`service/${n}/errors_per_s`]);
      return `<tr data-service="${n}"><td>${esc(SERVICE_TITLES[n])}</td><td>${r ? num(r[1], 1) : '–'}</td>` +
        `<td>${p ? num(p[1], 2) : '–'}</td><td>${e ? num(e[1], 2) : '–'}</td><td>${r ? when(r[0]) : 'no data'}</td></tr>`;
    }).join(''));
  } else if (state.view === 'errors') {
    drawChart('chart-error-levels', 'events/min',
              LEVELS.map((l) => ({ label: l, series: s[`errorbus/${l}/per_min`], color: COLORS[l] })), step);
  }
}

/* ---- the fleet --------------------------------------------------------------- */

/* When the agent last answered: its last probe while it answers; once it
 * is down, the change of state is the best the hub knows. */
function lastSeen(a) {
  const st = agentState(a).word;
  if (a.status === 'healthy') return when(a.last_checked);
  if (st === 'down' || st === 'unknown') return `before ${when(a.state_since)}`;
  return '–';
}

function fleetRow(a) {
  const st = agentState(a);
  const cls = (st.word === 'down' ? 'down' : st.word === 'unknown' || st.word === 'degraded' ? 'doubtful' : '') + ' clickable';
  return `<tr class="${cls}" data-agent="${esc(a.name)}" data-state="${esc(st.word)}">` +
    `<td class="name" title="${esc(a.host)}:${esc(a.port)}">${esc(a.name)}</td><td>${esc(a.machine)}</td>` +
    `<td class="state ${esc(st.word)}" title="${esc(st.reason)}">${esc(st.word)}</td>` +
    `<td title="${esc(a.error || '')}">${esc(a.status)}</td>` +
    `<td>${num(a.latency_ms, 1)} ms</td><td>${num(a.failure_probability * 100, 0)} %</td>` +
    `<td>${a.recovery_tier ? 'tier' + esc(a.recovery_tier) : '–'}</td>` +
    `<td class="time">${lastSeen(a)}</td>` +
    `<td>${a.supervised ? `<button data-restart="${esc(a.name)}" title="CoreOrchestrator runs this agent">Restart</button>` : ''}</td></tr>`;
}

function renderFleet(d) {
  const filter = state.filter.toLowerCase();
  const rows = filter ? d.fleet.filter((a) => (a.name + ' ' + a.machine).toLowerCase().includes(filter))
                      : d.fleet;
  paint('fleet-body', rows.length ? rows.map(fleetRow).join('') : empty(9, 'No agents watched.'));
  const down = d.fleet.filter((a) => agentState(a).word === 'down').length;
  $('fleet-count').textContent = `${rows.length} of ${d.fleet.length} agents, ${down} down`;
  paint('machines', Object.entries(d.machines || {}).map(([name, m]) =>
    card(name, `${m.up}/${m.agents} up`, m.status === 'healthy' ? '' : m.down ? 'bad' : 'warn')).join(''));
  const alerts = (d.alerts && d.alerts.active_alerts) || [];
  paint('alerts-body', alerts.length ? alerts.map((a) =>
    `<tr><td>${esc(a.rule_id)}</td><td>${esc(a.metric_name)}</td><td>${num(a.metric_value, 2)}</td>` +
    `<td>${num(a.threshold, 2)}</td><td class="sev-${esc(a.severity)}">${esc(a.severity)}</td>` +
    `<td class="time">${when(a.timestamp)}</td><td>${a.acknowledged ? 'acknowledged' : 'firing'}</td>` +
    `<td>${a.acknowledged ? '' : `<button data-ack-rule="${esc(a.rule_id)}" data-ack-metric="${esc(a.metric_name)}">Acknowledge</button>`}</td></tr>`
  ).join('') : empty(8, 'No active alerts.'));
}

/* ---- one agent ------------------------------------------------------------------ */

function agentOptions(d) {
  const names = d.fleet.map((a) => a.name).sort();
  if (!state.agent && names.length) state.agent = names[0];
  paint('agent-select', names.map((n) =>
    `<option value="${esc(n)}"${n === state.agent ? ' selected' : ''}>${esc(n)}</option>`).join(''));
}

async function loadAgent() {
  if (!state.agent) return;
  try {
    const res = await fetch('/api/agent?name=' + encodeURIComponent(state.agent), { cache: 'no-store' });
    state.agentData = res.ok ? await res.json() : null;
  } catch (e) {
    state.agentData = null;
  }
  renderAgent();
}

function renderAgent() {
  const d = state.agentData;
  if (!d) {
    paint('agent-summary', card('agent', state.agent || 'none', 'warn'));
    $('agent-restart').hidden = true;
    return;
  }
  const a = d.agent, p = d.process, st = agentState(a);
  $('agent-restart').hidden = !a.supervised;
  $('agent-restart-note').textContent = a.supervised ? '' : 'Keel does not run this agent: it cannot restart it.';
  paint('agent-summary', [
    card('state', st.word, st.word === 'down' ? 'bad' : st.word === 'up' ? '' : 'warn'),
    card('last probe', a.status), card('probe latency', num(a.latency_ms, 1) + ' ms'),
    card('failure probability', num(a.failure_probability * 100, 0) + ' %'),
    card('recovery tier', a.recovery_tier ? 'tier' + a.recovery_tier : 'none'),
    card('machine', a.machine),
    p ? card('process', `${p.state} pid ${p.pid || '–'}, ${p.restarts} restart${p.restarts === 1 ? '' : 's'}`) : '',
  ].join(''));
  const cutoff = Date.now() / 1000 - RANGES[state.range];
  const stored = Object.entries(d.series || {});
  paint('agent-series', stored.map(([name, pts], i) =>
    `<figure class="chart"><figcaption>${esc(name)} (logged with log_metric)</figcaption>` +
    `<div class="chart-box"><canvas id="chart-agent-metric-${i}" role="img" aria-label="${esc(name)} chart"></canvas></div></figure>`).join(''));
  stored.forEach(([name, pts], i) => drawChart(`chart-agent-metric-${i}`, 'value (as logged)',
    [{ label: name, series: pts.filter((q) => q[0] > cutoff), color: COLORS.latency }], RANGES[state.range]));
  const errors = d.errors || [];
  paint('agent-errors', d.errors_unavailable ? empty(4, 'ErrorBus unavailable: ' + d.errors_unavailable)
    : errors.length ? errors.map((e) =>
      `<tr><td class="time">${when(e.timestamp)}</td><td class="sev-${esc(e.level)}">${esc(e.level)}</td>` +
      `<td>${esc(e.error_type)}</td><td class="wrap">${esc(e.message)}</td></tr>`).join('')
      : empty(4, 'No errors reported.'));
  paint('agent-recovery', d.recovery.length ? d.recovery.map((r) =>
    `<tr><td class="time">${when(r.timestamp)}</td><td>${esc(r.action)}</td>` +
    `<td>${r.success ? 'ok' : 'failed: ' + esc(r.error || '')}</td></tr>`).join('') : empty(3, 'No restarts.'));
  paint('agent-events', d.events.length ? d.events.map((e) =>
    `<tr><td class="time">${when(e.timestamp)}</td><td>${esc(e.event_type)}</td>` +
    `<td class="wrap">${esc(JSON.stringify(e.details))}</td></tr>`).join('') : empty(3, 'No events.'));
}

/* ---- the other services ------------------------------------------------------------ */

function unavailable(id, svc, name) {
  const el = $(id);
  el.hidden = !!(svc && svc.available);
  if (!el.hidden) el.textContent = `${name} is unavailable${svc && svc.error ? ' (' + svc.error + ')' : ''}.`;
  return el.hidden ? svc : null;
}

/* Bar widths go through the CSSOM, never a style attribute: the page must
 * run under a Content-Security-Policy without 'unsafe-inline'. */
function sizeBars(id) {
  $(id).querySelectorAll('[data-pct]').forEach((el) => { el.style.width = el.dataset.pct + '%'; });
}

function renderGpus(d) {
  const svc = unavailable('gpus-unavailable', d.services.resource, 'ResourceManager');
  if (!svc) { paint('gpu-cards', ''); paint('gpu-models', ''); paint('gpu-tasks', ''); paint('gpu-queue', ''); return; }
  const devices = (svc.policy && svc.policy.devices) ||
    { MainPC: svc.vram && svc.vram.mainpc_vram, PC2: svc.vram && svc.vram.pc2_vram };
  paint('gpu-cards', Object.entries(devices).map(([name, m]) => {
    if (!m) return card(name, 'no device', 'warn');
    const total = m.total_mb || 1, used = m.used_mb || 0, reserved = m.reserved_mb || 0;
    return `<div class="card ${used / total > 0.9 ? 'bad' : ''}"><div class="label">${esc(name)}</div>` +
      `<div class="value">${num(used, 0)} / ${num(m.total_mb, 0)} MB</div>` +
      `<div class="dim">reserved ${num(reserved, 0)} MB, free ${num(m.free_mb, 0)} MB</div>` +
      `<div class="bar"><span class="used" data-pct="${(used / total * 100).toFixed(1)}"></span>` +
      `<span class="reserved" data-pct="${(reserved / total * 100).toFixed(1)}"></span></div></div>`;
  }).join(''));
  sizeBars('gpu-cards');
  const models = (svc.policy && svc.policy.loaded_models) || (svc.vram && svc.vram.loaded_models) || {};
  paint('gpu-models', Object.keys(models).length ? Object.entries(models).map(([name, m]) => {
    const info = typeof m === 'object' && m ? m : { vram_mb: m };
    return `<tr><td>${esc(name)}</td><td>${esc(info.device !== undefined ? info.device : '–')}</td>` +
      `<td>${num(info.vram_mb !== undefined ? info.vram_mb : info.size_mb, 0)}</td>` +
      `<td class="wrap">${esc(JSON.stringify(info))}</td></tr>`;
  }).join('') : empty(4, 'No models loaded.'));
  const tasks = svc.tasks || {};
  paint('gpu-queue', Object.entries(tasks.queue_sizes || {}).map(([p, n]) => card(p + ' priority', n)).join('') +
    (svc.status ? card('resources available', svc.status.resources_available ? 'yes' : 'no',
                       svc.status.resources_available ? '' : 'warn') : ''));
  const list = tasks.tasks || [];
  paint('gpu-tasks', list.length ? list.map((t) =>
    `<tr><td>${esc(t.task_id || t.id)}</td><td>${esc(t.task_type || t.type)}</td>` +
    `<td>${esc(t.priority)}</td><td>${esc(t.status || t.state)}</td></tr>`).join('') : empty(4, 'No tasks.'));
}

function renderErrors(d) {
  const svc = unavailable('errors-unavailable', d.services.errorbus, 'ErrorBus');
  const data = (x) => (svc && x && Array.isArray(x.data) ? x.data : []);
  const stats = svc && svc.statistics && svc.statistics.data;
  paint('error-stats', stats ? [card('received', stats.received), card('stored', stats.total),
    card('dropped', stats.dropped, stats.dropped ? 'warn' : ''), card('quarantined', stats.quarantined),
    ...Object.entries(stats.by_level_last_hour || {}).map(([l, n]) => card(l + ' (1 h)', n))].join('') : '');
  const errors = data(svc && svc.errors);
  paint('errors-body', errors.length ? errors.map((e) =>
    `<tr><td class="time">${when(e.timestamp)}</td><td class="name">${esc(e.agent)}</td>` +
    `<td class="sev-${esc(e.level)}">${esc(e.level)}</td>` +
    `<td>${esc(e.error_type)}</td><td class="wrap">${esc(e.message)}</td></tr>`).join('')
    : empty(5, svc ? 'No errors.' : 'Unavailable.'));
  const groups = data(svc && svc.groups);
  paint('error-groups', groups.length ? groups.map((g) =>
    `<tr><td>${esc(g.count)}</td><td class="name">${esc(g.agent)}</td><td>${esc(g.error_type)}</td>` +
    `<td class="wrap">${esc(g.pattern)}</td></tr>`).join('') : empty(4, 'No groups.'));
  const correlations = data(svc && svc.correlations);
  paint('error-correlations', correlations.length ? correlations.map((c) => {
    const rest = Object.assign({}, c);
    delete rest.id;
    delete rest.timestamp;
    return `<tr><td class="time">${when(c.timestamp || c.created_at)}</td><td class="wrap">${esc(JSON.stringify(rest))}</td></tr>`;
  }).join('') : empty(2, 'No correlations.'));
}

function renderCoordinator(d) {
  const svc = unavailable('core-unavailable', d.services.core, 'CoreOrchestrator');
  const h = (svc && svc.health) || {};
  const c = h.coordinator || {};
  const sup = h.supervisor || {};
  paint('core-cards', svc ? [card('queue depth', `${h.queue_size} / ${c.queue_max_size || '–'}`,
      c.queue_max_size && h.queue_size >= c.queue_max_size ? 'bad' : ''),
    card('paused', c.paused ? 'yes' : 'no'), card('registry', h.registry_size),
    card('requests ok / failed', `${(c.metrics || {}).success || 0} / ${(c.metrics || {}).failure || 0}`),
    card('supervised running', `${sup.running || 0} / ${sup.managed || 0}`, sup.failed ? 'bad' : '')].join('') : '');
  paint('core-breakers', Object.values(h.circuit_breakers || {}).map((b) =>
    `<tr><td>${esc(b.name)}</td><td class="state ${b.state === 'closed' ? 'up' : 'down'}">${esc(b.state)}</td>` +
    `<td>${esc(b.failure_count)}</td></tr>`).join('') || empty(3, svc ? 'No breakers.' : 'Unavailable.'));
  const agents = Object.entries((svc && svc.agents && svc.agents.agents) || {});
  paint('core-agents', agents.length ? agents.map(([name, a]) => {
    const p = a.process || {};
    return `<tr><td class="name">${esc(name)}</td><td>${esc(a.status)}</td><td>${esc(p.state || 'watched')}</td>` +
      `<td>${esc(p.pid || '–')}</td><td>${esc(p.restarts === undefined ? '–' : p.restarts)}</td>` +
      `<td class="time">${when(a.last_seen)}</td></tr>`;
  }).join('') : empty(6, 'No agents.'));
}

function renderSecurity(d) {
  const svc = unavailable('security-unavailable', d.services.security, 'SecurityGateway');
  const h = (svc && svc.health) || {};
  const counters = (svc && svc.counters) || {};
  const logins = counters.logins || {};
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  paint('security-cards', svc ? [
    card('failed logins', logins.failure || 0, logins.failure ? 'warn' : ''),
    card('successful logins', logins.success || 0),
    card('refused while locked', logins.locked || 0, logins.locked ? 'bad' : ''),
    card('lockouts', sum(counters.lockouts), sum(counters.lockouts) ? 'bad' : ''),
    card('bad tokens', sum(counters.token_misuse)),
    card('active sessions', h.active_sessions), card('users', h.registered_users)].join('') : '');
  const scores = Object.entries((svc && svc.scores && svc.scores.scores) || {}).sort((a, b) => a[1] - b[1]);
  paint('security-scores', scores.length ? scores.map(([name, s]) =>
    `<tr><td class="name">${esc(name)}</td><td class="state ${s < 0.5 ? 'down' : 'up'}">${num(s, 3)}</td></tr>`).join('')
    : empty(2, svc ? 'No trust scores yet.' : 'Unavailable.'));
}

/* ---- the loop ------------------------------------------------------------------------ */

const renderers = { fleet: renderFleet, gpus: renderGpus, errors: renderErrors,
                    coordinator: renderCoordinator, security: renderSecurity };

function render() {
  const d = state.data;
  if (!d) return;
  agentOptions(d);
  if (renderers[state.view]) renderers[state.view](d);
}

/* Fresh, or greyed with the time of the last figures the hub gave. */
function showFreshness() {
  const stale = state.failures >= STALE_AFTER;
  document.body.classList.toggle('stale', stale);
  $('status').className = stale ? 'stale' : '';
  if (!state.lastOk) {
    $('updated').textContent = stale ? 'hub unreachable: no data yet' : 'connecting…';
  } else if (stale) {
    $('updated').textContent = `hub unreachable: as of ${clockOf(state.lastOk)} on ${dayOf(state.lastOk)}`;
  } else {
    $('updated').textContent = `updated ${dayOf(state.lastOk)} ${clockOf(state.lastOk)}`;
  }
}

async function poll() {
  try {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    const res = await fetch('/api/dashboard', { cache: 'no-store', signal: ctl.signal });
    clearTimeout(timer);
    if (!res.ok) throw new Error('HTTP ' + res.status);
    state.data = await res.json();
    state.failures = 0;
    state.lastOk = new Date();
    showFreshness();
    render();
    if (state.view === 'agent') await loadAgent();
    await loadHistory(false);
  } catch (e) {
    state.failures++;
    showFreshness();
  }
}

async function loop() {
  const started = Date.now();
  await poll();
  setTimeout(loop, Math.max(100, POLL_MS - (Date.now() - started)));
}

function show(view) {
  state.view = view;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.view === view));
  document.querySelectorAll('.view').forEach((v) => v.classList.toggle('active', v.id === 'view-' + view));
  render();
  if (view === 'agent') loadAgent();
  loadHistory(true);
}

function chooseRange(range) {
  state.range = range;
  document.querySelectorAll('#range button').forEach((b) => b.classList.toggle('active', b.dataset.range === range));
  if (state.view === 'agent') renderAgent();
  loadHistory(true);
}

function wire() {
  if (typeof Chart !== 'undefined') {
    Chart.defaults.color = '#8a96a6';
    Chart.defaults.borderColor = '#2c323c';
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  }
  $('tabs').addEventListener('click', (e) => { if (e.target.dataset.view) show(e.target.dataset.view); });
  $('range').addEventListener('click', (e) => { if (e.target.dataset.range) chooseRange(e.target.dataset.range); });
  $('fleet-filter').addEventListener('input', (e) => { state.filter = e.target.value; render(); });
  $('fleet-body').addEventListener('click', (e) => {
    const name = e.target.dataset.restart;
    if (name) { restart(name); return; }
    const row = e.target.closest('tr[data-agent]');
    if (row) { state.agent = row.dataset.agent; state.agentData = null; show('agent'); }
  });
  $('alerts-body').addEventListener('click', (e) => {
    const rule = e.target.dataset.ackRule;
    if (rule) act('/api/ack', { rule_id: rule, metric_name: e.target.dataset.ackMetric },
                  `Alert ${rule} acknowledged.`).then(poll);
  });
  $('agent-select').addEventListener('change', (e) => {
    state.agent = e.target.value;
    state.agentData = null;
    loadAgent();
    loadHistory(true);
  });
  $('agent-restart').addEventListener('click', () => restart(state.agent));
  $('token').value = token();
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    notice('Token saved for this tab.', true);
  });
  $('token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    notice('Token forgotten.', true);
  });
}

wire();
loop();
