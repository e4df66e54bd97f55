// The ObservabilityHub dashboard in a real browser: Debian's headless
// Chromium, driven by playwright-core, against a running `keeld all` on a
// free PORT_OFFSET with a temporary data directory.  Simulated agents are
// small Python processes answering health on ZMQ (sim_agent.py): agents the
// test runs itself (so it can kill one), and one that CoreOrchestrator
// supervises (so a restart from the page really restarts a process).
// Every process started here is stopped in `after`, also when a test fails.
// The page is served with `Content-Security-Policy: default-src 'self'`
// added, and any violation, script error or failed GET fails the suite.
// Every wait is multiplied by KEEL_TIME_FACTOR, as the integration
// harness's are: a busy machine or valgrind slows keeld, not the page.
//
//   cd tests/browser && npm ci && KEEL_BUILD=../../build node --test
//   (or `make browser`); screenshots land in $KEEL_BUILD/screenshots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BUILD = path.resolve(ROOT, process.env.KEEL_BUILD || 'build');
const KEELD = path.join(BUILD, 'keeld');
const KEELCTL = path.join(BUILD, 'keelctl');
const FAKE_NVML = path.join(BUILD, 'tests', 'libfake-nvml.so');
const PYTHON = '/usr/bin/python3';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(BUILD, 'screenshots');
// Every port `keeld all` listens on without legacy_ports, before PORT_OFFSET.
const KEEL_PORTS = [5591, 6584, 7000, 7001, 7002, 7003, 7005, 7150, 7151, 8000, 8001, 8002, 8003, 8005];
// The last name is longer than any column would show whole on one line.
const LONG = 'RequestCoordinatorAgentWithANameLongerThanAnyColumn';
const SIM = ['sim-a', 'sim-b', 'sim-c', LONG];
const MANAGED = 'sim-m';
const PASSWORD = 'dashboard-test-' + process.pid;
const TIME_FACTOR = Number(process.env.KEEL_TIME_FACTOR) || 1;
const scaled = (ms) => ms * TIME_FACTOR;
// What issue 14 promises with the hub's defaults (2 s sweeps, 2 s probe
// timeout, down after 2 failures of 3): a dead agent is red on the page
// within 10 s, the hub's 6 s plus its 1 s cache and the page's 1 s poll.
const REFRESH_BOUND_MS = scaled(10000);
const DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const everyChild = [];

// A crash of the runner itself must not leave processes behind either.
process.on('exit', () => {
  for (const child of everyChild) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// In batches, so checking a thousand ports never runs out of descriptors.
async function allFree(ports) {
  for (let i = 0; i < ports.length; i += 100) {
    const free = await Promise.all(ports.slice(i, i + 100).map(portFree));
    if (!free.every(Boolean)) return false;
  }
  return true;
}

async function freeOffset(extraBases) {
  for (let i = 0; i < 200; i++) {
    const offset = (100 + Math.floor(Math.random() * 2900)) * 10;
    if (await allFree(KEEL_PORTS.concat(extraBases).map((p) => p + offset))) return offset;
  }
  throw new Error('no free PORT_OFFSET');
}

// Below Linux's ephemeral range (32768 up), where a busy machine's
// TIME_WAIT connections hold ports, and clear of Keel's ports at `offset`.
async function freeRange(count, offset) {
  const lo = Math.min(...KEEL_PORTS) + offset, hi = Math.max(...KEEL_PORTS) + offset;
  for (let i = 0; i < 100; i++) {
    const first = 10000 + Math.floor(Math.random() * (32000 - count - 10000));
    if (first + count > lo && first <= hi) continue;
    if (await allFree(Array.from({ length: count }, (_, k) => first + k))) return first;
  }
  throw new Error(`no ${count} free ports in a row`);
}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

/* One keeld, its helpers and a browser page, torn down by close(). */
class Stack {
  constructor(offset) {
    this.offset = offset;
    this.base = `http://127.0.0.1:${8002 + offset}`;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-browser-'));
    this.env = { PORT_OFFSET: String(offset), KEEL_DATA_DIR: path.join(this.dataDir, 'data') };
    if (fs.existsSync(FAKE_NVML))
      Object.assign(this.env, { KEEL_NVML_LIB: FAKE_NVML,
                                FAKE_NVML_DEVICES: 'RTX 4090:24564:6100:35,RTX 3060:12288:2300:12' });
    this.children = [];
  }

  spawn(name, cmd, args) {
    const log = fs.openSync(path.join(this.dataDir, name + '.log'), 'a');
    const child = spawn(cmd, args, { env: { ...process.env, ...this.env }, stdio: ['ignore', log, log],
                                     cwd: this.dataDir });
    fs.closeSync(log);
    this.children.push(child);
    everyChild.push(child);
    return child;
  }

  simAgent(name, port, count = 1) {
    return this.spawn(name, PYTHON, [path.join(HERE, 'sim_agent.py'), name, String(port), String(count)]);
  }

  async startKeel(configText) {
    assert.ok(fs.existsSync(KEELD), `${KEELD} is missing: run make first`);
    const file = path.join(this.dataDir, 'keel.yaml');
    fs.writeFileSync(file, configText);
    this.keeld = this.spawn('keeld', KEELD, ['all', '--config', file]);
    try {
      for (const port of [8000, 8001, 8002, 8003, 8005])
        await waitFor(`keeld on ${port + this.offset}`, async () =>
          (await fetch(`http://127.0.0.1:${port + this.offset}/health`)).status === 200, 20000);
    } catch (e) {
      const log = fs.readFileSync(path.join(this.dataDir, 'keeld.log'), 'utf8').split('\n').slice(-30).join('\n');
      throw new Error(`${e.message}; keeld exit ${this.keeld.exitCode}, its log ends:\n${log}`);
    }
  }

  // The strictest policy the page must live with: everything from the hub
  // itself, nothing inline.  Added here to the page's own reply, so the
  // test does not depend on what keeld sends.
  async enforceCsp() {
    await this.context.route(this.base + '/', async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, headers: { ...response.headers(),
                                                 'content-security-policy': "default-src 'self'" } });
    });
    this.problems = [];
    // A refused POST is logged as "Failed to load resource": the response
    // listener judges requests, and only GETs must all succeed.
    this.page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
        this.problems.push(`console: ${m.text()}`);
    });
    this.page.on('pageerror', (e) => this.problems.push(`script error: ${e.message}`));
    this.page.on('response', (r) => {
      if (r.request().method() === 'GET' && r.status() >= 400) this.problems.push(`GET ${r.url()}: ${r.status()}`);
    });
  }

  async openBrowser() {
    // A fresh profile (--user-data-dir) in the temporary directory:
    // playwright hands it to Chromium itself in a persistent context.
    this.context = await chromium.launchPersistentContext(path.join(this.dataDir, 'chromium'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 900 },
      // A locale whose default clock is 12-hour: the page must not follow it.
      locale: 'en-US',
    });
    this.page = this.context.pages()[0] || await this.context.newPage();
    return this.page;
  }

  zmq(verb, port, text) {
    const r = spawnSync(PYTHON, [path.join(HERE, 'zmq_tool.py'), verb, `tcp://127.0.0.1:${port + this.offset}`, text],
                        { encoding: 'utf8', timeout: 15000 });
    if (r.status !== 0) throw new Error(`zmq_tool ${verb} failed: ${r.stderr}`);
    return verb === 'request' ? JSON.parse(r.stdout) : null;
  }

  async api(pathname) {
    return (await fetch(this.base + pathname)).json();
  }

  async shot(name, fullPage = false) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await this.page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage });
  }

  // What Chart.js drew on a canvas: axis titles, ranges, tick labels, series.
  chart(id) {
    return this.page.evaluate((canvas) => {
      const c = Chart.getChart(canvas);
      if (!c) return null;
      return {
        xTitle: c.options.scales.x.title.display ? c.options.scales.x.title.text : '',
        yTitle: c.options.scales.y.title.display ? c.options.scales.y.title.text : '',
        xMin: c.scales.x.min, xMax: c.scales.x.max, yMin: c.scales.y.min, yMax: c.scales.y.max,
        xTicks: c.scales.x.ticks.map((t) => t.label), yTicks: c.scales.y.ticks.map((t) => t.label),
        series: c.data.datasets.map((d) => ({ label: d.label, values: d.data.map((p) => p.y) })),
      };
    }, id);
  }

  // Stops everything; keeld must then have exited cleanly (0), which under
  // AddressSanitizer also means no leak was found.
  async close() {
    if (this.context) await this.context.close().catch(() => {});
    for (const child of this.children.reverse()) await stop(child);
    const code = this.keeld ? this.keeld.exitCode : 0;
    const log = code === 0 ? '' : fs.readFileSync(path.join(this.dataDir, 'keeld.log'), 'utf8').slice(-4000);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    assert.equal(code, 0, `keeld exited with ${code}:\n${log}`);
  }
}

describe('dashboard in headless Chromium', { timeout: scaled(240000) }, () => {
  let s, page, token;
  const ports = {}, procs = {}, dialogs = [];

  async function managedProcess() {
    const d = await s.api('/api/dashboard');
    const agents = d.services.core.agents;
    return (agents && agents.agents[MANAGED] && agents.agents[MANAGED].process) || {};
  }

  // The hub's defaults for sweeps and probes (issue 14's 10 s is about
  // them); history every second so the charts fill within the test.
  function config() {
    const agent = (name, machine) => `    - {name: ${name}, port: ${ports[name]}, machine: ${machine}}`;
    return [
      'observability:',
      '  discover: false',
      '  history: {step_s: 1}',
      '  metrics: {collection_interval_ms: 500}',
      '  agents:',
      ...SIM.map((n, i) => agent(n, i === 2 ? 'pc2' : 'mainpc')),
      agent(MANAGED, 'mainpc'),
      'core:',
      '  supervisor: {stop_grace_s: 2}',
      '  agents:',
      `    - {name: ${MANAGED}, command: ${PYTHON}, args: [${path.join(HERE, 'sim_agent.py')}, ${MANAGED}, ` +
      `"${ports[MANAGED]}"], port: ${ports[MANAGED]}}`,
      '',
    ].join('\n');
  }

  before(async () => {
    s = new Stack(await freeOffset([7600, 7601, 7602, 7603, 7604]));
    SIM.concat([MANAGED]).forEach((n, i) => { ports[n] = 7600 + i + s.offset; });
    for (const n of SIM) procs[n] = s.simAgent(n, ports[n]);
    await s.startKeel(config());
    const add = spawnSync(KEELCTL, ['--port-offset', String(s.offset), 'user', 'add', 'admin', '--admin', '--password-stdin'],
                          { input: PASSWORD + '\n', env: { ...process.env, ...s.env }, encoding: 'utf8', timeout: 30000 });
    assert.equal(add.status, 0, add.stderr);
    page = await s.openBrowser();
    await s.enforceCsp();
    page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.accept(); });
  });

  after(() => s && s.close());

  test('the page and its assets come from the binary', async () => {
    for (const [p, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/app.css', 'text/css'],
                             ['/ui/chart.min.js', 'text/javascript'], ['/favicon.ico', 'image/svg+xml']]) {
      const res = await fetch(s.base + p);
      assert.equal(res.status, 200, p);
      assert.ok(res.headers.get('content-type').startsWith(type), `${p}: ${res.headers.get('content-type')}`);
    }
    assert.equal((await fetch(s.base + '/ui/missing.js')).status, 404);
  });

  test('the fleet table lists the simulated agents by their full names', async () => {
    await page.goto(s.base + '/');
    for (const name of SIM.concat([MANAGED]))
      await page.waitForSelector(`#fleet-body tr[data-agent="${name}"][data-state="up"]`, { timeout: scaled(15000) });
    const names = await page.$$eval('#fleet-body tr[data-agent]', (rows) => rows.map((r) => r.dataset.agent));
    assert.deepEqual([...names].sort(), SIM.concat([MANAGED]).sort());
    assert.equal(await page.locator('#fleet-body tr.down').count(), 0);
    assert.match(await page.locator('#fleet-body tr[data-agent="sim-c"]').innerText(), /pc2/);
    // Whole, never cut: the cell shows every character and nothing overflows it.
    const cell = await page.$eval(`#fleet-body tr[data-agent="${LONG}"] td.name`, (td) =>
      ({ text: td.innerText.replace(/\s/g, ''), clipped: td.scrollWidth > td.clientWidth }));
    assert.equal(cell.text, LONG);
    assert.equal(cell.clipped, false);
    const option = await page.$eval(`#agent-select option[value="${LONG}"]`, (o) => o.textContent);
    assert.equal(option, LONG);
    await s.shot('fleet');
  });

  test('times are 24-hour with the date, whatever the locale', async () => {
    assert.match(await page.evaluate(() => new Date(2020, 0, 1, 15, 4, 5).toLocaleTimeString()), /^3:04:05\sPM$/,
                 'the browser runs a 12-hour locale');
    const seen = await page.$$eval('#fleet-body td.time', (tds) => tds.map((td) => td.innerText));
    assert.ok(seen.length >= SIM.length);
    for (const text of seen) assert.match(text, DATE_TIME);
    const updated = await page.locator('#updated').innerText();
    assert.match(updated, /^updated \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.doesNotMatch(await page.locator('main').innerText(), /\b(AM|PM)\b/);
  });

  test('restart is offered only for the agent Keel supervises', async () => {
    await page.waitForSelector(`#fleet-body button[data-restart="${MANAGED}"]`, { timeout: scaled(5000) });
    assert.equal(await page.locator('#fleet-body button[data-restart]').count(), 1);
    for (const name of SIM)
      assert.equal(await page.locator(`#fleet-body tr[data-agent="${name}"] button`).count(), 0, name);
    await page.click('#fleet-body tr[data-agent="sim-a"] td');
    await page.locator('#agent-restart-note', { hasText: 'does not run this agent' }).waitFor({ timeout: scaled(5000) });
    assert.equal(await page.locator('#agent-restart').isHidden(), true);
    await page.selectOption('#agent-select', MANAGED);
    await page.waitForSelector('#agent-restart:not([hidden])', { timeout: scaled(5000) });
    await page.click('#tabs button[data-view="fleet"]');
  });

  test('an agent killed turns red within 10 s with the default sweep, worst first', async (t) => {
    const killed = Date.now();
    procs['sim-b'].kill('SIGKILL');
    await page.waitForSelector('#fleet-body tr.down[data-agent="sim-b"]', { timeout: REFRESH_BOUND_MS });
    const elapsed = Date.now() - killed;
    assert.ok(elapsed < REFRESH_BOUND_MS, `turned red after ${elapsed} ms`);
    t.diagnostic(`red ${elapsed} ms after the kill`);
    assert.equal(await page.$eval('#fleet-body tr[data-agent]', (r) => r.dataset.agent), 'sim-b');
    const bg = await page.$eval('#fleet-body tr.down td', (td) => getComputedStyle(td).backgroundColor);
    const [r, g, b] = bg.match(/\d+(\.\d+)?/g).map(Number);
    assert.ok(r > g && r > b, `row background ${bg} is red`);
    await s.shot('fleet-agent-down');
  });

  test('an error published on 7150 appears in the errors feed and the rate by level', async () => {
    const marker = `dashboard feed check ${Date.now()}`;
    await page.click('#tabs button[data-view="errors"]');
    s.zmq('publish', 7150, 'ERROR:' + JSON.stringify({ agent: 'sim-a', error_type: 'browser_test',
                                                        message: marker, severity: 'error' }));
    await page.locator('#errors-body', { hasText: marker }).waitFor({ timeout: REFRESH_BOUND_MS });
    const row = page.locator('#errors-body tr', { hasText: marker });
    assert.match(await row.innerText(), /sim-a/);
    assert.match(await row.locator('td.time').innerText(), DATE_TIME);
    await page.locator('#error-groups', { hasText: 'browser_test' }).waitFor({ timeout: scaled(5000) });
    const levels = await waitFor('the error in the rate by level', async () => {
      const c = await s.chart('chart-error-levels');
      return c && c.series.find((d) => d.label === 'error').values.some((v) => v > 0) ? c : null;
    }, scaled(20000));
    assert.deepEqual(levels.series.map((d) => d.label), ['critical', 'error', 'warning', 'info', 'debug']);
    assert.equal(levels.yMin, 0);
    assert.match(levels.yTitle, /events\/min/);
    await s.shot('errors');
  });

  test('the agent charts have time and value axes from zero, over the chosen range', async () => {
    for (const value of [0.25, 0.5])
      s.zmq('request', 7002, JSON.stringify({ action: 'log_metric', service: 'sim-a',
                                              metric_type: 'response_time', value }));
    await page.click('#tabs button[data-view="fleet"]');
    await page.click(`#fleet-body tr[data-agent="sim-a"] td`);
    const latency = await waitFor('probe latency points', async () => {
      const c = await s.chart('chart-agent-latency');
      return c && c.series[0].values.filter((v) => v !== null).length >= 3 ? c : null;
    }, scaled(20000));
    assert.equal(latency.yMin, 0, 'the value axis starts at zero');
    assert.match(latency.yTitle, /latency \(ms\)/);
    assert.match(latency.xTitle, /^Time, 24-hour \(\d{4}-\d{2}-\d{2}/);
    assert.ok(Math.abs(latency.xMax - latency.xMin - 900000) < 5000, 'the axis spans 15 minutes');
    assert.ok(latency.xTicks.length >= 4, latency.xTicks.join());
    for (const label of latency.xTicks) assert.match(label, /^\d{2}:\d{2}$/);
    assert.ok(latency.yTicks.length >= 2 && Number(latency.yTicks[0]) === 0, latency.yTicks.join());
    assert.ok(latency.series[0].values.every((v) => v === null || v > 0));
    const logged = await waitFor('the logged metric', () => s.chart('chart-agent-metric-0'), scaled(5000));
    assert.equal(logged.yMin, 0);
    assert.deepEqual(logged.series[0].values, [0.25, 0.5]);
    assert.match(await page.locator('#agent-series figcaption').innerText(), /response_time/);
    const failed = await s.chart('chart-agent-errors');
    assert.equal(failed.yMin, 0);
    assert.equal(failed.yMax, 100);
    assert.match(failed.yTitle, /failed \(%\)/);
    await page.click('#range button[data-range="1h"]');
    const hour = await waitFor('the hour range', async () => {
      const c = await s.chart('chart-agent-latency');
      return c && Math.abs(c.xMax - c.xMin - 3600000) < 5000 ? c : null;
    }, scaled(5000));
    assert.ok(hour.series[0].values.some((v) => v > 0), 'the open minute is drawn');
    const minutes = hour.xTicks.map((l) => Number(l.slice(3)));
    assert.ok(minutes.every((m) => m % 10 === 0), `ticks every 10 minutes: ${hour.xTicks.join()}`);
    await page.click('#range button[data-range="24h"]');
    await waitFor('the day range', async () => {
      const c = await s.chart('chart-agent-latency');
      return c && Math.abs(c.xMax - c.xMin - 86400000) < 5000;
    }, scaled(5000));
    await page.click('#range button[data-range="15m"]');
  });

  test("Keel's own services are charted from their metrics", async () => {
    await page.click('#tabs button[data-view="keel"]');
    const requests = await waitFor('requests of the services', async () => {
      const c = await s.chart('chart-keel-requests');
      return c && c.series.find((d) => d.label === 'CoreOrchestrator').values.some((v) => v > 0) ? c : null;
    }, scaled(20000));
    assert.deepEqual(requests.series.map((d) => d.label),
                     ['CoreOrchestrator', 'ResourceManager', 'ObservabilityHub', 'ErrorBus', 'SecurityGateway']);
    for (const id of ['chart-keel-requests', 'chart-keel-p99', 'chart-keel-errors']) {
      const c = await s.chart(id);
      assert.equal(c.yMin, 0, id);
      assert.ok(c.yTitle && c.xTitle.startsWith('Time, 24-hour'), id);
    }
    assert.match((await s.chart('chart-keel-p99')).yTitle, /\(ms\)/);
    const core = page.locator('#keel-body tr[data-service="core"]');
    assert.match(await core.innerText(), /CoreOrchestrator\s+\d+\.\d/);
    assert.match(await core.locator('td').last().innerText(), DATE_TIME);
    await s.shot('keel');
  });

  test('a restart from the page is refused without a token', async () => {
    const before = (await managedProcess()).pid;
    assert.ok(before, 'the supervised agent runs');
    await page.click('#tabs button[data-view="fleet"]');
    await page.click('#token-clear');
    await page.click(`#fleet-body button[data-restart="${MANAGED}"]`);
    await page.locator('#notice.error', { hasText: 'Refused' }).waitFor({ timeout: scaled(5000) });
    assert.match(await page.locator('#notice').innerText(), /Refused \(40[13]\)/);
    await sleep(1500);
    assert.equal((await managedProcess()).pid, before, 'nothing was restarted');
  });

  test('a restart from the page works with an administrator token', async () => {
    const login = s.zmq('request', 7005, JSON.stringify({ action: 'login', user_id: 'admin', password: PASSWORD }));
    assert.equal(login.status, 'success', JSON.stringify(login));
    token = login.session.token;
    const before = (await managedProcess()).pid;
    await page.fill('#token', token);
    await page.click('#token-save');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('keel.token')), token);
    await page.click(`#fleet-body button[data-restart="${MANAGED}"]`);
    await page.locator('#notice.ok', { hasText: 'restart requested' }).waitFor({ timeout: scaled(5000) });
    assert.equal(dialogs.at(-1), `Restart ${MANAGED}?`, 'the page asks before restarting');
    const now = await waitFor('a new process', async () => {
      const p = await managedProcess();
      return p.pid && p.pid !== before && p.state === 'running' ? p : null;
    }, scaled(15000));
    assert.notEqual(now.pid, before);
    await page.click(`#fleet-body tr[data-agent="${MANAGED}"] td`);
    await page.locator('#agent-recovery', { hasText: 'dashboard_restart' }).waitFor({ timeout: scaled(5000) });
    assert.match(await page.locator('#agent-recovery td.time').first().innerText(), DATE_TIME);
    await page.locator('#agent-summary', { hasText: `pid ${now.pid}` }).waitFor({ timeout: scaled(5000) });
    await waitFor('the latency chart', async () => {
      const c = await s.chart('chart-agent-latency');
      return c && c.series[0].values.some((v) => v > 0);
    }, scaled(10000));
    await s.shot('agent');
  });

  test('an alert is acknowledged from the page with the token', async () => {
    const rule = { rule_id: 'browser_memory', metric_name: 'memory_percent', condition: 'gt',
                   threshold: 0, severity: 'warning', for_s: 0 };
    const res = await fetch(s.base + '/add_alert_rule', {
      method: 'POST', body: JSON.stringify(rule),
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token } });
    assert.equal(res.status, 200, await res.text());
    await page.click('#tabs button[data-view="fleet"]');
    const button = page.locator('#alerts-body button[data-ack-rule="browser_memory"]');
    await button.waitFor({ timeout: scaled(10000) });
    await button.click();
    await page.locator('#notice.ok', { hasText: 'browser_memory acknowledged' }).waitFor({ timeout: scaled(5000) });
    await page.locator('#alerts-body tr', { hasText: 'browser_memory' })
      .filter({ hasText: 'acknowledged' }).waitFor({ timeout: scaled(5000) });
    const alerts = await s.api('/alerts');
    const acked = alerts.active_alerts.find((a) => a.rule_id === 'browser_memory');
    assert.equal(acked.acknowledged, true);
  });

  test('the other views show what the services answer', async () => {
    const failed = s.zmq('request', 7005, JSON.stringify({ action: 'login', user_id: 'admin', password: 'wrong' }));
    assert.equal(failed.status, 'error');
    // log_performance is an administrator's (it sets a trust score)
    s.zmq('request', 7005, JSON.stringify({ action: 'log_performance', model_id: 'sim-a', success: true,
                                            response_time: 0.2, auth_token: token }));
    await page.click('#tabs button[data-view="security"]');
    await page.locator('#security-cards .card', { hasText: 'failed logins' }).filter({ hasText: /[1-9]/ })
      .waitFor({ timeout: scaled(5000) });
    await page.locator('#security-scores', { hasText: 'sim-a' }).waitFor({ timeout: scaled(5000) });
    await s.shot('security');
    await page.click('#tabs button[data-view="coordinator"]');
    await page.locator('#core-breakers', { hasText: 'ChainOfThoughtAgent' }).waitFor({ timeout: scaled(5000) });
    await page.locator('#core-agents', { hasText: MANAGED }).waitFor({ timeout: scaled(5000) });
    await s.shot('coordinator');
    await page.click('#tabs button[data-view="gpus"]');
    await page.waitForSelector('#gpu-cards .card', { timeout: scaled(5000) });
    assert.equal(await page.locator('#gpus-unavailable').isHidden(), true);
    if (fs.existsSync(FAKE_NVML)) {
      const widths = await page.$$eval('#gpu-cards .bar .used', (bars) => bars.map((b) => b.getBoundingClientRect().width));
      assert.ok(widths.length && widths.every((w) => w > 0), `VRAM bars drawn without inline styles: ${widths}`);
    }
    await s.shot('gpus');
  });

  test('the page ran under a strict CSP with no error and no failed request', () => {
    assert.deepEqual(s.problems, []);
  });

  test('when the hub stops, every view is greyed with the time of its last figures', async () => {
    await page.click('#tabs button[data-view="fleet"]');
    await page.waitForSelector('body:not(.stale)', { timeout: scaled(5000) });
    const lastUpdate = (await page.locator('#updated').innerText()).slice('updated '.length);
    s.keeld.kill('SIGTERM');
    await page.waitForSelector('body.stale', { timeout: scaled(15000) });
    const status = await page.locator('#updated').innerText();
    const [, clock, day] = status.match(/^hub unreachable: as of (\d{2}:\d{2}:\d{2}) on (\d{4}-\d{2}-\d{2})$/) || [];
    assert.ok(clock, status);
    assert.ok(`${day} ${clock}` >= lastUpdate, `${status} is the last update (${lastUpdate}) or later`);
    const look = await page.$eval('main', (m) => ({ opacity: Number(getComputedStyle(m).opacity),
                                                     filter: getComputedStyle(m).filter }));
    assert.ok(look.opacity < 0.6, `opacity ${look.opacity}`);
    assert.match(look.filter, /grayscale\(1\)/);
    assert.ok(await page.locator('#fleet-body tr[data-agent]').count() > 0, 'the last figures stay, greyed');
    await s.shot('stale');
  });
});

describe('dashboard with a thousand agents', { timeout: scaled(180000) }, () => {
  const UP = 900, DOWN = 100;
  let s, page;

  // The probe timeout is the hub's default (2 s), scaled: 900 agents are
  // answered by one Python process, which on a busy machine (a 2-core CI
  // runner straight after the integration suite) needs more than the
  // 300 ms this test once allowed: agents then timed out, flapped down,
  // and turned whole machines "unreachable", so the count never settled.
  before(async () => {
    s = new Stack(await freeOffset([]));
    const first = await freeRange(UP + DOWN, s.offset);
    s.simAgent('sim-many', first, UP);
    const timeout = Math.round(scaled(2000));
    const agents = Array.from({ length: UP + DOWN }, (_, k) =>
      `    - {name: agent-${String(k).padStart(4, '0')}, port: ${first + k}, machine: ${k % 2 ? 'pc2' : 'mainpc'}, timeout_ms: ${timeout}}`);
    await s.startKeel(['observability:', '  interval_s: 1', '  discover: false', '  agents:', ...agents, ''].join('\n'));
    page = await s.openBrowser();
  });

  after(() => s && s.close());

  test('1,000 agents render and the page stays responsive', async (t) => {
    await page.goto(s.base + '/');
    await waitFor('every agent probed', async () =>
      (await page.locator('#fleet-count').innerText()).startsWith(`${UP + DOWN} of ${UP + DOWN} agents, ${DOWN} down`),
      scaled(60000));
    assert.equal(await page.locator('#fleet-body tr[data-agent]').count(), UP + DOWN);
    assert.equal(await page.locator('#fleet-body tr.down').count(), DOWN);
    // The down agents sort first.
    assert.equal(await page.$eval('#fleet-body tr[data-agent]', (r) => r.dataset.state), 'down');
    // A full render of the table from scratch, as a poll with changes does.
    // The best of five: what the code costs, not how busy the machine was
    // during one of them (a shared 2-core runner can stall any single run).
    const ms = await page.evaluate(() => {
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        painted.clear();
        render();
        best = Math.min(best, performance.now() - t);
      }
      return best;
    });
    assert.ok(ms < scaled(300), `a full render took ${ms} ms`);
    let took = Infinity, doc = '';
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      doc = await (await fetch(s.base + '/api/dashboard')).text();
      took = Math.min(took, Date.now() - started);
    }
    assert.ok(took < scaled(1500), `/api/dashboard took ${took} ms`);
    t.diagnostic(`full render of 1,000 rows: ${ms.toFixed(1)} ms; /api/dashboard: ${took} ms, ${doc.length} bytes`);
    await page.fill('#fleet-filter', 'agent-0999');
    await waitFor('the filter', async () => (await page.locator('#fleet-body tr[data-agent]').count()) === 1, scaled(2000));
    await page.fill('#fleet-filter', '');
    await s.shot('fleet-1000');
  });
});
