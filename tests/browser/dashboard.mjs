// tests/browser/dashboard.mjs - the dashboard (www/) driven in a real
// browser against a lab cluster: Debian's Chromium through playwright-core
// (never a downloaded browser). Run by tests/lab/test_dashboard.sh inside
// gw1's network namespace, so it reaches gw1's API on loopback; it checks
// what the page shows against what `tandemctl --json` says on each node.
//
// Environment (all set by test_dashboard.sh):
//   DASH_URL         the API's base, e.g. http://127.0.0.1:8080
//   DASH_TOKEN_FILE  the API token file (api.token_file)
//   DASH_OUT         where the screenshots go (PNG, one per state)
//   DASH_VERSION     the version the upgrade goes to; its image is in
//                    api.images_dir under a name holding the version
//   DASH_PROBE       1 when the traffic probe writes api.probe_file
//   TANDEMCTL, DASH_SOCK_GW1, DASH_SOCK_GW2   tandemctl and the nodes' sockets
//   DASH_LIMIT_MS    the whole run's bound (default 120000)
//
// Checks, in order: (1) the overview shows gw1 primary of group 1; (2) a
// failover of group 1 to gw2 clicked in the page (a wrong token first: the
// page asks again) shows on the page and in both nodes' status, then the
// manual flag cleared by a click brings it back; (4) an events page opened
// before the failover shows its events as they happen; (3) an upgrade to
// DASH_VERSION chosen, planned and started on the upgrade page runs to
// completed with its steps seen going through running and done, every
// node on the new version on the page and in `tandemctl status`; the
// events page follows the upgrade live across gw1's own restart.
// Prints "  ok    ..." / "  FAIL  ..." lines like tests/lab/lib.sh; exits 1
// if any check failed.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => {
	const v = process.env[k] ?? d;
	if (v === undefined) { console.error(`dashboard.mjs: ${k} is not set`); process.exit(2); }
	return v;
};
const URL_BASE = env('DASH_URL');
const TOKEN = readFileSync(env('DASH_TOKEN_FILE'), 'utf8').trim();
const OUT = env('DASH_OUT');
const VERSION = env('DASH_VERSION');
const PROBE = env('DASH_PROBE', '0') === '1';
const CTL = env('TANDEMCTL');
const SOCK = { gw1: env('DASH_SOCK_GW1'), gw2: env('DASH_SOCK_GW2') };
const LIMIT_MS = Number(env('DASH_LIMIT_MS', '120000'));
const T0 = Date.now();

let fails = 0;
const log = (s) => console.error(`${new Date().toISOString().slice(11, 23)} dashboard: ${s}`);
function check(name, ok, detail = '') {
	console.error(`  ${ok ? 'ok  ' : 'FAIL'}  ${name}${detail ? `: ${detail}` : ''}`);
	if (!ok) fails++;
	return ok;
}

// A check the rest depends on: report, screenshot, stop.
class Fatal extends Error {}
function must(name, ok, detail) {
	if (!check(name, ok, detail)) throw new Fatal(name);
}

function ctl(node, ...args) {
	try {
		return JSON.parse(execFileSync(CTL, ['--socket', SOCK[node], '--json', ...args], { timeout: 10000, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
	} catch (e) {
		return { error: String(e.stderr || e.message).trim() };
	}
}
const groupOf = (st, g) => (st.groups || []).find((x) => x.id === g) || {};

async function waitFor(desc, fn, timeoutMs, everyMs = 200) {
	const end = Date.now() + timeoutMs;
	let last;
	for (;;) {
		try { last = await fn(); } catch (e) { last = undefined; }
		if (last) return last;
		if (Date.now() >= end) { log(`timed out after ${timeoutMs} ms waiting for ${desc}`); return null; }
		await new Promise((r) => setTimeout(r, everyMs));
	}
}

const tid = (id) => `[data-testid="${id}"]`;
async function text(page, id) {
	const el = await page.$(tid(id));
	return el ? (await el.textContent()).trim() : null;
}
async function attr(page, id, name) {
	const el = await page.$(tid(id));
	return el ? el.getAttribute(name) : null;
}

mkdirSync(OUT, { recursive: true });
let shotN = 0;
async function shot(page, name) {
	const f = join(OUT, `${String(++shotN).padStart(2, '0')}-${name}.png`);
	await page.screenshot({ path: f, fullPage: true });
	log(`screenshot ${f}`);
}

const browser = await chromium.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox', '--disable-dev-shm-usage'],
	timeout: 30000,
});
const limit = setTimeout(() => {
	console.error(`FAIL: the browser test did not finish within ${LIMIT_MS} ms`);
	browser.close().finally(() => process.exit(1));
}, LIMIT_MS);

const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
ctx.setDefaultTimeout(10000);
const pageErrors = [];
const main = await ctx.newPage();
const events = await ctx.newPage();
for (const p of [main, events]) {
	p.on('pageerror', (e) => pageErrors.push(e.message));
	// The API's Content-Security-Policy must not block anything the page does.
	p.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) pageErrors.push(m.text()); });
}

try {
	// ---- (1) the overview ------------------------------------------------
	log('(1) overview');
	await main.goto(`${URL_BASE}/#/overview`);
	await events.goto(`${URL_BASE}/#/events`);
	const p1 = await waitFor('group 1 primary on the page', async () => (await text(main, 'group-1-primary')) === 'gw1', 15000);
	must('(1) overview: gw1 is primary of group 1', !!p1, `page says ${await text(main, 'group-1-primary')}`);
	const st1 = ctl('gw1', 'status');
	check('(1) overview: gw1\'s version as tandemctl says', (await text(main, 'node-gw1-version')) === st1.version, `${await text(main, 'node-gw1-version')} vs ${st1.version}`);
	check('(1) overview: gw2 alive', (await attr(main, 'node-gw2', 'data-state')) === 'alive');
	check('(1) overview: the header says live', (await attr(main, 'conn-state', 'data-state')) === 'live');
	await shot(main, 'overview');

	// ---- (2) failover by click, a wrong token first ------------------------
	log('(2) failover of group 1 to gw2 from the page');
	const stream = await waitFor('the events stream live', async () => (await attr(events, 'events-stream-state', 'data-state')) === 'live', 10000);
	check('(4) events page: the stream is live', !!stream);
	const rowsBefore = await events.$$eval('[data-testid="event-row"]', (r) => r.length);
	check('(4) events page: the kept events shown at load', rowsBefore > 0, `${rowsBefore} rows`);
	await main.selectOption(tid('failover-group-1-to'), 'gw2');
	await main.click(tid('failover-group-1'));
	await main.waitForSelector(`${tid('token-dialog')}[open]`);
	await main.fill(tid('token-input'), 'not-the-token-0123456789');
	await main.click(tid('token-save'));
	const asked = await waitFor('the token asked again after a 401', async () =>
		(await main.$(`${tid('token-dialog')}[open]`)) && !(await main.$eval(tid('token-error'), (e) => e.hidden)), 10000);
	check('(2) a wrong token: refused (401) and asked again, with the reason', !!asked, asked ? await text(main, 'token-error') : '');
	check('(2) a wrong token changed nothing', groupOf(ctl('gw1', 'status'), 1).primary === 'gw1');
	await main.fill(tid('token-input'), TOKEN);
	await main.click(tid('token-save'));
	const moved = await waitFor('group 1 primary gw2 on the page', async () => (await text(main, 'group-1-primary')) === 'gw2', 15000);
	check('(2) failover: the page shows gw2 primary of group 1', !!moved, `page says ${await text(main, 'group-1-primary')}`);
	const okMsg = await main.$(tid('action-ok'));
	check('(2) failover: the page says it was done', !!okMsg, okMsg ? (await okMsg.textContent()).trim() : '');
	const s1 = ctl('gw1', 'status'), s2 = ctl('gw2', 'status');
	check('(2) failover: tandemctl on gw2: primary of group 1', groupOf(s2, 1).state === 'primary', groupOf(s2, 1).state);
	check('(2) failover: tandemctl on gw1: gw2 is group 1\'s primary', groupOf(s1, 1).primary === 'gw2' && groupOf(s1, 1).state === 'secondary',
		`${groupOf(s1, 1).state}, primary ${groupOf(s1, 1).primary}`);
	check('(2) failover: the manual flag shows', (await text(main, 'group-1-manual')) !== 'no');
	await shot(main, 'failover-done');

	// ---- (4) the events page followed it live --------------------------------
	log('(4) events of the failover on the events page opened before it');
	const live = await waitFor('gw1 giving up group 1 on the events page', async () =>
		events.$$eval('[data-testid="event-row"][data-event="group.state"]', (rows) =>
			rows.some((r) => r.textContent.includes('group=1') && r.textContent.includes('to=secondary'))), 10000);
	check('(4) events page: gw1\'s group.state group=1 to=secondary arrived live', !!live);
	const cause = await events.$$eval('[data-testid="event-row"][data-event="group.state"]', (rows) => {
		const r = rows.find((x) => x.textContent.includes('group=1') && x.textContent.includes('to=secondary'));
		return r ? r.querySelector('.ev-fields').textContent : '';
	});
	check('(4) events page: the event shows its cause (reason=...)', /reason=\S+/.test(cause), cause);
	check('(4) events page: its time and node shown', await events.$$eval('[data-testid="event-row"][data-event="group.state"]', (rows) =>
		rows.some((r) => /\d\d:\d\d:\d\d\.\d{3}/.test(r.querySelector('.ev-time').textContent) && r.querySelector('.ev-node').textContent === 'gw1')));
	await events.fill(tid('events-filter'), 'group.state');
	const filtered = await events.$$eval('[data-testid="event-row"]', (rows) => rows.filter((r) => !r.hidden).map((r) => r.dataset.event));
	check('(4) events page: the filter keeps only matching events', filtered.length > 0 && filtered.every((e) => e === 'group.state'), `${filtered.length} shown`);
	await shot(events, 'events-failover');
	await events.fill(tid('events-filter'), '');

	// The manual flag cleared by a click: preemption brings group 1 home.
	const reset = await main.$(tid('failover-group-1-reset'));
	must('(2) the page offers to clear the manual flag', !!reset);
	await reset.click();
	const back = await waitFor('group 1 back on gw1', async () => (await text(main, 'group-1-primary')) === 'gw1', 15000);
	check('(2) manual flag cleared from the page: group 1 back on gw1 (preempt)', !!back && groupOf(ctl('gw2', 'status'), 1).primary === 'gw1');

	// ---- (3) the upgrade ------------------------------------------------------
	log(`(3) upgrade to ${VERSION} from the upgrade page`);
	await main.goto(`${URL_BASE}/#/upgrade`);
	const opt = await waitFor('the image in the select', async () =>
		main.$$eval(`${tid('image-select')} option`, (os, v) => (os.find((o) => o.value.includes(v)) || {}).value, VERSION), 10000);
	must(`(3) the image select lists the ${VERSION} image`, !!opt, opt || '');
	await main.selectOption(tid('image-select'), opt);
	// A cluster that just failed over needs a moment (sessions, facts): the
	// plan is asked again until it passes, as an operator would.
	let planOk = null;
	const planEnd = Date.now() + 30000;
	while (Date.now() < planEnd) {
		await main.click(tid('plan-button'));
		await main.waitForSelector(tid('plan-summary'));
		await main.waitForFunction((s) => !document.querySelector(s).disabled, tid('plan-button'));
		planOk = await attr(main, 'plan-summary', 'data-all-ok');
		if (planOk === 'true') break;
		await main.waitForTimeout(1000);
	}
	const nChecks = await main.$$eval('[data-testid^="plan-check-"]', (r) => r.length);
	check('(3) plan: every pre-check passed on the page', planOk === 'true', `${nChecks} checks shown`);
	check('(3) plan: the checks listed with their codes', nChecks >= 10 && !!(await main.$(tid('plan-check-E_IMAGE'))));
	await shot(main, 'upgrade-plan');

	await main.click(tid('start-button'));
	await main.waitForSelector(`${tid('confirm-dialog')}[open]`);
	await main.click(tid('confirm-ok'));
	const seen = { states: new Set(), steps: new Map(), nodes: new Map(), progressWhileRunning: false, down: false };
	let midShot = false;
	const ended = await waitFor('the upgrade to end on the page', async () => {
		const snap = await main.evaluate(() => ({
			state: document.querySelector('[data-testid="upgrade-state"]')?.dataset.state,
			conn: document.querySelector('[data-testid="conn-state"]')?.dataset.state,
			steps: [...document.querySelectorAll('[data-testid^="upgrade-step-"]')].map((e) => [e.dataset.testid, e.dataset.status]),
			nodes: [...document.querySelectorAll('[data-testid^="upgrade-node-"][data-state]')].map((e) => [e.dataset.testid, e.dataset.state]),
			bar: (() => {
				const o = document.querySelector('[data-testid="upgrade-progress"]');
				return o ? o.firstElementChild.getBoundingClientRect().width / o.getBoundingClientRect().width : null;
			})(),
		}));
		if (snap.state === 'running' && snap.bar > 0.05 && snap.bar < 0.95) seen.partialBar = true;
		if (snap.state) seen.states.add(snap.state);
		if (snap.conn === 'down') seen.down = true;
		for (const [k, v] of snap.steps) { if (!seen.steps.has(k)) seen.steps.set(k, new Set()); seen.steps.get(k).add(v); }
		for (const [k, v] of snap.nodes) { if (!seen.nodes.has(k)) seen.nodes.set(k, new Set()); seen.nodes.get(k).add(v); }
		if (snap.state === 'running') {
			const done = snap.steps.filter(([, s]) => s === 'done').length;
			const pending = snap.steps.filter(([, s]) => s === 'pending').length;
			if (done > 0 && pending > 0) seen.progressWhileRunning = true;
			if (!midShot && snap.steps.some(([, s]) => s === 'running') && done > 0) {
				midShot = true;
				await shot(main, 'upgrade-running');
			}
		}
		return ['completed', 'failed', 'aborted', 'rolled_back'].includes(snap.state) ? snap.state : null;
	}, 120000, 150);
	const steps = [...seen.steps.entries()];
	log(`seen: states ${[...seen.states].join(',')}; steps ${steps.map(([k, v]) => `${k.slice(13)}:${[...v].join('/')}`).join(' ')}; nodes ${[...seen.nodes.entries()].map(([k, v]) => `${k.slice(13)}:${[...v].join('/')}`).join(' ')}; page lost the node for a while: ${seen.down}`);
	check('(3) upgrade: the page showed it running', seen.states.has('running'));
	check('(3) upgrade: steps seen done while others were pending', seen.progressWhileRunning);
	check('(3) upgrade: the progress bar seen part-way', !!seen.partialBar);
	check('(3) upgrade: steps seen running', steps.filter(([, v]) => v.has('running')).length >= 2, `${steps.filter(([, v]) => v.has('running')).length} steps`);
	check('(3) upgrade: a node seen between pending and upgraded', [...seen.nodes.values()].some((v) => [...v].some((s) => !['pending', 'upgraded'].includes(s))));
	check('(3) upgrade: the page shows it completed', ended === 'completed', ended || 'no end');
	const final = await main.$$eval('[data-testid^="upgrade-step-"]', (r) => r.map((e) => e.dataset.status));
	check('(3) upgrade: every step done on the page', final.length >= 6 && final.every((s) => s === 'done' || s === 'skipped'), final.join(','));
	for (const n of ['gw1', 'gw2'])
		check(`(3) upgrade: the page shows ${n} on ${VERSION}`, (await waitFor(`${n} on ${VERSION}`, async () => (await text(main, `upgrade-node-${n}-version`)) === VERSION, 10000)) !== null);
	for (const n of ['gw1', 'gw2'])
		check(`(3) upgrade: tandemctl on ${n}: runs ${VERSION}`, ctl(n, 'status').version === VERSION, ctl(n, 'status').version);
	check('(3) upgrade: tandemctl upgrade status: completed', ctl('gw2', 'upgrade', 'status').state === 'completed');
	if (PROBE) {
		const ps = await waitFor('the probe panel', async () => (await attr(main, 'probe-panel', 'data-state')) === 'ok', 5000);
		check('(3) upgrade page: the traffic probe shown', !!ps, (await text(main, 'probe-tcp')) || '');
	}
	// The installed versions are fetched again once the upgrade ends: gw1
	// (serving the page) is seen running the new version there too.
	const inst = await waitFor(`installed versions show ${VERSION} running`, async () =>
		((await text(main, 'images-installed')) || '').includes(`Running${VERSION}`), 10000);
	check(`(3) upgrade page: installed versions refreshed to ${VERSION}`, !!inst, ((await text(main, 'images-installed')) || '').slice(0, 80));
	await shot(main, 'upgrade-completed');
	await main.goto(`${URL_BASE}/#/overview`);
	const ov = await waitFor(`the overview with both on ${VERSION}`, async () =>
		(await text(main, 'node-gw1-version')) === VERSION && (await text(main, 'node-gw2-version')) === VERSION, 10000);
	check(`(3) overview: both nodes on ${VERSION}`, !!ov);
	await shot(main, 'overview-after-upgrade');

	// ---- (4) the events page followed the upgrade, across gw1's restart --------
	const upEv = await waitFor('upgrade.state to=completed on the events page', async () =>
		events.$$eval('[data-testid="event-row"][data-event="upgrade.state"]', (rows) => rows.some((r) => r.textContent.includes('to=completed'))), 15000);
	check('(4) events page: upgrade.state to=completed arrived live (after gw1 restarted)', !!upEv);
	await shot(events, 'events-upgrade');
	check('no script error in the page', pageErrors.length === 0, pageErrors.join(' | '));
} catch (e) {
	if (!(e instanceof Fatal)) check(`unexpected: ${e.message.split('\n')[0]}`, false);
	await shot(main, 'failure').catch(() => {});
} finally {
	clearTimeout(limit);
	await browser.close();
}
log(`${fails ? `${fails} check(s) failed` : 'all checks passed'} in ${Date.now() - T0} ms`);
process.exit(fails ? 1 : 0);
