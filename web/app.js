/* Keel dashboard: one page, no framework, nothing fetched but this hub's
 * own /api routes.
 *
 * Live updates by polling /api/dashboard once a second rather than
 * server-sent events: polling is simple, passes through every proxy, and
 * holds no long-lived connection per viewer, which matters because the
 * hub's HTTP server runs a thread per connection; the hub builds the
 * document at most once a second for all viewers together.
 *
 * Rendering stays fast with a thousand agents: each table is built as one
 * string and set with one innerHTML (never a node per cell), only the
 * visible view is rendered, and a table whose HTML did not change is not
 * touched at all.  Every value from the services is escaped: agent names
 * and error messages come from other processes. */
'use strict';

const POLL_MS = 1000;
const TOKEN_KEY = 'keel.token';
const state = { view: 'fleet', data: null, agent: null, agentData: null, filter: '', failures: 0 };
const painted = new Map();

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

/* Bar widths from data-width: the Content-Security-Policy refuses style
 * attributes in markup, but not styles set from this script. */
function setWidths(id) {
  for (const el of $(id).querySelectorAll('[data-width]')) el.style.width = el.dataset.width + '%';
}

function num(value, digits) {
  return typeof value === 'number' && isFinite(value) ? value.toFixed(digits) : '–';
}

function when(value) {
  if (value === null || value === undefined || value === '') return '–';
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return isNaN(d) ? esc(value) : d.toLocaleTimeString();
}

function card(label, value, cls) {
  return `<div class="card ${cls || ''}"><div class="label">${esc(label)}</div>` +
         `<div class="value">${esc(value)}</div></div>`;
}

function empty(cols, text) {
  return `<tr><td colspan="${cols}" class="dim">${esc(text)}</td></tr>`;
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

/* ---- the fleet --------------------------------------------------------------- */

/* When the agent last answered: its last probe while it answers; once it
 * is down, the change of state is the best the hub knows. */
function lastSeen(a) {
  if (a.status === 'healthy') return when(a.last_checked);
  if (a.state === 'down' || a.state === 'unreachable') return `before ${when(a.state_since)}`;
  return '–';
}

function fleetRow(a) {
  const cls = (a.state === 'down' ? 'down' : a.state === 'unreachable' ? 'unreachable' : '') + ' clickable';
  return `<tr class="${cls}" data-agent="${esc(a.name)}" data-state="${esc(a.state)}">` +
    `<td title="${esc(a.host)}:${esc(a.port)}">${esc(a.name)}</td><td>${esc(a.machine)}</td>` +
    `<td class="state ${esc(a.state)}">${esc(a.state)}</td>` +
    `<td title="${esc(a.error || '')}">${esc(a.status)}</td>` +
    `<td>${num(a.latency_ms, 1)} ms</td><td>${num(a.failure_probability * 100, 0)} %</td>` +
    `<td>${a.recovery_tier ? 'tier' + esc(a.recovery_tier) : '–'}</td>` +
    `<td>${lastSeen(a)}</td>` +
    `<td><button data-restart="${esc(a.name)}">Restart</button></td></tr>`;
}

function renderFleet(d) {
  const filter = state.filter.toLowerCase();
  const rows = filter ? d.fleet.filter((a) => (a.name + ' ' + a.machine).toLowerCase().includes(filter))
                      : d.fleet;
  paint('fleet-body', rows.length ? rows.map(fleetRow).join('') : empty(9, 'No agents watched.'));
  const down = d.fleet.filter((a) => a.state === 'down').length;
  $('fleet-count').textContent = `${rows.length} of ${d.fleet.length} agents, ${down} down`;
  paint('machines', Object.entries(d.machines || {}).map(([name, m]) =>
    card(name, `${m.up}/${m.agents} up`, m.status === 'healthy' ? '' : m.down ? 'bad' : 'warn')).join(''));
  const alerts = (d.alerts && d.alerts.active_alerts) || [];
  paint('alerts-body', alerts.length ? alerts.map((a) =>
    `<tr><td>${esc(a.rule_id)}</td><td>${esc(a.metric_name)}</td><td>${num(a.metric_value, 2)}</td>` +
    `<td>${num(a.threshold, 2)}</td><td class="sev-${esc(a.severity)}">${esc(a.severity)}</td>` +
    `<td>${when(a.timestamp)}</td><td>${a.acknowledged ? 'acknowledged' : 'firing'}</td>` +
    `<td>${a.acknowledged ? '' : `<button data-ack-rule="${esc(a.rule_id)}" data-ack-metric="${esc(a.metric_name)}">Acknowledge</button>`}</td></tr>`
  ).join('') : empty(8, 'No active alerts.'));
}

/* ---- one agent ------------------------------------------------------------------ */

/* An inline SVG polyline; the labels are HTML beside it, so stretching the
 * drawing to the panel's width never distorts the text. */
function chart(points, unit) {
  if (!points || points.length < 2) return '<p class="dim">Not enough samples yet.</p>';
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(...ys, 0) || 1;
  const w = 600, h = 120;
  const line = points.map((p) =>
    `${(((p[0] - x0) / ((x1 - x0) || 1)) * w).toFixed(1)},${(h - (p[1] / y1) * (h - 4)).toFixed(1)}`).join(' ');
  return `<div class="chart-labels"><span>max ${esc(num(y1, 2))} ${esc(unit)}, last ` +
    `${esc(num(ys[ys.length - 1], 2))} ${esc(unit)}</span><span>${when(x0)} – ${when(x1)}, ` +
    `${points.length} samples</span></div>` +
    `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img"><polyline points="${line}"/></svg>`;
}

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
    return;
  }
  const a = d.agent, p = d.process;
  paint('agent-summary', [
    card('state', a.state, a.state === 'down' ? 'bad' : a.state === 'up' ? '' : 'warn'),
    card('last probe', a.status), card('latency', num(a.latency_ms, 1) + ' ms'),
    card('failure probability', num(a.failure_probability * 100, 0) + ' %'),
    card('recovery tier', a.recovery_tier ? 'tier' + a.recovery_tier : 'none'),
    card('machine', a.machine),
    p ? card('process', `${p.state} pid ${p.pid || '–'}, ${p.restarts} restarts`) : '',
  ].join(''));
  paint('agent-latency', `<div class="chart">${chart(d.latency_ms, 'ms')}</div>`);
  paint('agent-series', Object.entries(d.series || {}).map(([name, points]) =>
    `<h2>${esc(name)} (stored samples)</h2><div class="chart">${chart(points, '')}</div>`).join(''));
  const errors = d.errors || [];
  paint('agent-errors', d.errors_unavailable ? empty(4, 'ErrorBus unavailable: ' + d.errors_unavailable)
    : errors.length ? errors.map((e) =>
      `<tr><td>${when(e.timestamp)}</td><td class="sev-${esc(e.level)}">${esc(e.level)}</td>` +
      `<td>${esc(e.error_type)}</td><td class="wrap">${esc(e.message)}</td></tr>`).join('')
      : empty(4, 'No errors reported.'));
  paint('agent-recovery', d.recovery.length ? d.recovery.map((r) =>
    `<tr><td>${when(r.timestamp)}</td><td>${esc(r.action)}</td>` +
    `<td>${r.success ? 'ok' : 'failed: ' + esc(r.error || '')}</td></tr>`).join('') : empty(3, 'No restarts.'));
  paint('agent-events', d.events.length ? d.events.map((e) =>
    `<tr><td>${when(e.timestamp)}</td><td>${esc(e.event_type)}</td>` +
    `<td class="wrap">${esc(JSON.stringify(e.details))}</td></tr>`).join('') : empty(3, 'No events.'));
}

/* ---- the other services ------------------------------------------------------------ */

function unavailable(id, svc, name) {
  const el = $(id);
  el.hidden = !!(svc && svc.available);
  if (!el.hidden) el.textContent = `${name} is unavailable${svc && svc.error ? ' (' + svc.error + ')' : ''}.`;
  return el.hidden ? svc : null;
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
      `<div class="bar"><span class="used" data-width="${(used / total * 100).toFixed(1)}"></span>` +
      `<span class="reserved" data-width="${(reserved / total * 100).toFixed(1)}"></span></div></div>`;
  }).join(''));
  setWidths('gpu-cards');
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
    `<tr><td>${when(e.timestamp)}</td><td>${esc(e.agent)}</td><td class="sev-${esc(e.level)}">${esc(e.level)}</td>` +
    `<td>${esc(e.error_type)}</td><td class="wrap">${esc(e.message)}</td></tr>`).join('')
    : empty(5, svc ? 'No errors.' : 'Unavailable.'));
  const groups = data(svc && svc.groups);
  paint('error-groups', groups.length ? groups.map((g) =>
    `<tr><td>${esc(g.count)}</td><td>${esc(g.agent)}</td><td>${esc(g.error_type)}</td>` +
    `<td class="wrap">${esc(g.pattern)}</td></tr>`).join('') : empty(4, 'No groups.'));
  const correlations = data(svc && svc.correlations);
  paint('error-correlations', correlations.length ? correlations.map((c) => {
    const rest = Object.assign({}, c);
    delete rest.id;
    delete rest.timestamp;
    return `<tr><td>${when(c.timestamp || c.created_at)}</td><td class="wrap">${esc(JSON.stringify(rest))}</td></tr>`;
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
    return `<tr><td>${esc(name)}</td><td>${esc(a.status)}</td><td>${esc(p.state || 'watched')}</td>` +
      `<td>${esc(p.pid || '–')}</td><td>${esc(p.restarts === undefined ? '–' : p.restarts)}</td>` +
      `<td>${when(a.last_seen)}</td></tr>`;
  }).join('') : empty(6, 'No supervised agents.'));
}

function renderSecurity(d) {
  const svc = unavailable('security-unavailable', d.services.security, 'SecurityGateway');
  const h = (svc && svc.health) || {};
  const counters = (svc && svc.counters) || {};
  const logins = counters.keel_security_logins_total || {};
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  paint('security-cards', svc ? [
    card('failed logins', logins.failure || 0, logins.failure ? 'warn' : ''),
    card('successful logins', logins.success || 0),
    card('refused while locked', logins.locked || 0, logins.locked ? 'bad' : ''),
    card('lockouts', sum(counters.keel_security_lockouts_total), sum(counters.keel_security_lockouts_total) ? 'bad' : ''),
    card('bad tokens', sum(counters.keel_security_token_misuse_total)),
    card('active sessions', h.active_sessions), card('users', h.registered_users)].join('') : '');
  const scores = Object.entries((svc && svc.scores && svc.scores.scores) || {}).sort((a, b) => a[1] - b[1]);
  paint('security-scores', scores.length ? scores.map(([name, s]) =>
    `<tr><td>${esc(name)}</td><td class="state ${s < 0.5 ? 'down' : 'up'}">${num(s, 3)}</td></tr>`).join('')
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

async function poll() {
  try {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    const res = await fetch('/api/dashboard', { cache: 'no-store', signal: ctl.signal });
    clearTimeout(timer);
    if (!res.ok) throw new Error('HTTP ' + res.status);
    state.data = await res.json();
    state.failures = 0;
    $('status').className = '';
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    render();
    if (state.view === 'agent') await loadAgent();
  } catch (e) {
    state.failures++;
    $('status').className = 'stale';
    $('updated').textContent = 'hub unreachable (' + e.message + ')';
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
}

function wire() {
  $('tabs').addEventListener('click', (e) => { if (e.target.dataset.view) show(e.target.dataset.view); });
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
  $('agent-select').addEventListener('change', (e) => { state.agent = e.target.value; state.agentData = null; loadAgent(); });
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
