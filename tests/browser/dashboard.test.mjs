// The ObservabilityHub dashboard in a real browser: Debian's headless
// Chromium, driven by playwright-core, against a running `keeld all` on a
// free PORT_OFFSET with a temporary data directory.  Simulated agents are
// small Python processes answering health on ZMQ (sim_agent.py): agents the
// test runs itself (so it can kill one), and one that CoreOrchestrator
// supervises (so a restart from the page really restarts a process).
// Every process started here is stopped in `after`, also when a test fails.
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
const SIM = ['sim-a', 'sim-b', 'sim-c'];
const MANAGED = 'sim-m';
const PASSWORD = 'dashboard-test-' + process.pid;
// The page must show a change within this: the probe interval (1 s) times
// the failures that turn an agent down (2 of 3), plus the probe timeout,
// the hub's 1 s cache and the page's 1 s poll, with room for a slow CI.
const REFRESH_BOUND_MS = 8000;

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

  async openBrowser() {
    // A fresh profile (--user-data-dir) in the temporary directory:
    // playwright hands it to Chromium itself in a persistent context.
    this.context = await chromium.launchPersistentContext(path.join(this.dataDir, 'chromium'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 900 },
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

  async shot(name, fullPage = true) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await this.page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage });
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

describe('dashboard in headless Chromium', { timeout: 180000 }, () => {
  let s, page, token;
  const ports = {}, procs = {}, dialogs = [];

  async function managedProcess() {
    const d = await s.api('/api/dashboard');
    const agents = d.services.core.agents;
    return (agents && agents.agents[MANAGED] && agents.agents[MANAGED].process) || {};
  }

  function config() {
    const agent = (name, machine) => `    - {name: ${name}, port: ${ports[name]}, machine: ${machine}, timeout_ms: 300}`;
    return [
      'observability:',
      '  interval_s: 1',
      '  discover: false',
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
    s = new Stack(await freeOffset([7600, 7601, 7602, 7603]));
    SIM.concat([MANAGED]).forEach((n, i) => { ports[n] = 7600 + i + s.offset; });
    for (const n of SIM) procs[n] = s.simAgent(n, ports[n]);
    await s.startKeel(config());
    const add = spawnSync(KEELCTL, ['--port-offset', String(s.offset), 'user', 'add', 'admin', '--admin', '--password-stdin'],
                          { input: PASSWORD + '\n', env: { ...process.env, ...s.env }, encoding: 'utf8', timeout: 30000 });
    assert.equal(add.status, 0, add.stderr);
    page = await s.openBrowser();
    page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.accept(); });
  });

  after(() => s && s.close());

  test('the page and its assets come from the binary', async () => {
    for (const [p, type] of [['/', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/app.css', 'text/css']]) {
      const res = await fetch(s.base + p);
      assert.equal(res.status, 200, p);
      assert.match(res.headers.get('content-type'), new RegExp(type));
    }
    assert.equal((await fetch(s.base + '/ui/missing.js')).status, 404);
  });

  test('the fleet table lists the simulated agents', async () => {
    await page.goto(s.base + '/');
    for (const name of SIM.concat([MANAGED]))
      await page.waitForSelector(`#fleet-body tr[data-agent="${name}"][data-state="up"]`, { timeout: 15000 });
    const names = await page.$$eval('#fleet-body tr[data-agent]', (rows) => rows.map((r) => r.dataset.agent));
    assert.deepEqual([...names].sort(), SIM.concat([MANAGED]).sort());
    assert.equal(await page.locator('#fleet-body tr.down').count(), 0);
    assert.match(await page.locator('#fleet-body tr[data-agent="sim-c"]').innerText(), /pc2/);
    await s.shot('fleet');
  });

  test('an agent killed turns red within the refresh time, worst first', async (t) => {
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

  test('an error published on 7150 appears in the errors feed', async () => {
    const marker = `dashboard feed check ${Date.now()}`;
    await page.click('#tabs button[data-view="errors"]');
    s.zmq('publish', 7150, 'ERROR:' + JSON.stringify({ agent: 'sim-a', error_type: 'browser_test',
                                                        message: marker, severity: 'error' }));
    await page.locator('#errors-body', { hasText: marker }).waitFor({ timeout: REFRESH_BOUND_MS });
    assert.match(await page.locator('#errors-body tr', { hasText: marker }).innerText(), /sim-a/);
    await page.locator('#error-groups', { hasText: 'browser_test' }).waitFor({ timeout: 5000 });
    await s.shot('errors');
  });

  test('a restart from the page is refused without a token', async () => {
    const before = (await managedProcess()).pid;
    assert.ok(before, 'the supervised agent runs');
    await page.click('#tabs button[data-view="fleet"]');
    await page.click('#token-clear');
    await page.click(`#fleet-body button[data-restart="${MANAGED}"]`);
    await page.locator('#notice.error', { hasText: 'Refused' }).waitFor({ timeout: 5000 });
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
    await page.locator('#notice.ok', { hasText: 'restart requested' }).waitFor({ timeout: 5000 });
    assert.equal(dialogs.at(-1), `Restart ${MANAGED}?`, 'the page asks before restarting');
    const now = await waitFor('a new process', async () => {
      const p = await managedProcess();
      return p.pid && p.pid !== before && p.state === 'running' ? p : null;
    }, 15000);
    assert.notEqual(now.pid, before);
    await page.click(`#fleet-body tr[data-agent="${MANAGED}"] td`);
    await page.locator('#agent-recovery', { hasText: 'dashboard_restart' }).waitFor({ timeout: 5000 });
    await page.locator('#agent-summary', { hasText: `pid ${now.pid}` }).waitFor({ timeout: 5000 });
    await page.waitForSelector('#agent-latency svg polyline', { timeout: 10000 });
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
    await button.waitFor({ timeout: 10000 });
    await button.click();
    await page.locator('#notice.ok', { hasText: 'browser_memory acknowledged' }).waitFor({ timeout: 5000 });
    await page.locator('#alerts-body tr', { hasText: 'browser_memory' })
      .filter({ hasText: 'acknowledged' }).waitFor({ timeout: 5000 });
    const alerts = await s.api('/alerts');
    const acked = alerts.active_alerts.find((a) => a.rule_id === 'browser_memory');
    assert.equal(acked.acknowledged, true);
  });

  test('the other views show what the services answer', async () => {
    const failed = s.zmq('request', 7005, JSON.stringify({ action: 'login', user_id: 'admin', password: 'wrong' }));
    assert.equal(failed.status, 'error');
    s.zmq('request', 7005, JSON.stringify({ action: 'log_performance', model_id: 'sim-a', success: true,
                                            response_time: 0.2 }));
    await page.click('#tabs button[data-view="security"]');
    await page.locator('#security-cards .card', { hasText: 'failed logins' }).filter({ hasText: /[1-9]/ })
      .waitFor({ timeout: 5000 });
    await page.locator('#security-scores', { hasText: 'sim-a' }).waitFor({ timeout: 5000 });
    await s.shot('security');
    await page.click('#tabs button[data-view="coordinator"]');
    await page.locator('#core-breakers', { hasText: 'ChainOfThoughtAgent' }).waitFor({ timeout: 5000 });
    await page.locator('#core-agents', { hasText: MANAGED }).waitFor({ timeout: 5000 });
    await s.shot('coordinator');
    await page.click('#tabs button[data-view="gpus"]');
    await page.waitForSelector('#gpu-cards .card', { timeout: 5000 });
    assert.equal(await page.locator('#gpus-unavailable').isHidden(), true);
    await s.shot('gpus');
  });
});

describe('dashboard with a thousand agents', { timeout: 120000 }, () => {
  const UP = 900, DOWN = 100;
  let s, page;

  before(async () => {
    s = new Stack(await freeOffset([]));
    const first = await freeRange(UP + DOWN, s.offset);
    s.simAgent('sim-many', first, UP);
    const agents = Array.from({ length: UP + DOWN }, (_, k) =>
      `    - {name: agent-${String(k).padStart(4, '0')}, port: ${first + k}, machine: ${k % 2 ? 'pc2' : 'mainpc'}, timeout_ms: 300}`);
    await s.startKeel(['observability:', '  interval_s: 1', '  discover: false', '  agents:', ...agents, ''].join('\n'));
    page = await s.openBrowser();
  });

  after(() => s && s.close());

  test('1,000 agents render and the page stays responsive', async (t) => {
    await page.goto(s.base + '/');
    await waitFor('every agent probed', async () =>
      (await page.locator('#fleet-count').innerText()).startsWith(`${UP + DOWN} of ${UP + DOWN} agents, ${DOWN} down`),
      30000);
    assert.equal(await page.locator('#fleet-body tr[data-agent]').count(), UP + DOWN);
    assert.equal(await page.locator('#fleet-body tr.down').count(), DOWN);
    // The down agents sort first.
    assert.equal(await page.$eval('#fleet-body tr[data-agent]', (r) => r.dataset.state), 'down');
    // A full render of the table from scratch, as a poll with changes does.
    const ms = await page.evaluate(() => {
      const t = performance.now();
      painted.clear();
      render();
      return performance.now() - t;
    });
    assert.ok(ms < 300, `a full render took ${ms} ms`);
    const started = Date.now();
    const doc = await (await fetch(s.base + '/api/dashboard')).text();
    const took = Date.now() - started;
    assert.ok(took < 1500, `/api/dashboard took ${took} ms`);
    t.diagnostic(`full render of 1,000 rows: ${ms.toFixed(1)} ms; /api/dashboard: ${took} ms, ${doc.length} bytes`);
    await page.fill('#fleet-filter', 'agent-0999');
    await waitFor('the filter', async () => (await page.locator('#fleet-body tr[data-agent]').count()) === 1, 2000);
    await page.fill('#fleet-filter', '');
    await s.shot('fleet-1000', false);
  });
});
