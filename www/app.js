/*
 * www/app.js - the Tandem dashboard's behaviour (an ES2020 module, no
 * framework, nothing fetched from outside the node). Owns the page's state,
 * its polling of the HTTP API (docs/api.md: GET /api/cluster and
 * /api/cluster/upgrade/status every second, /api/probe and /api/images on
 * the upgrade page), the event stream reader, the writes (failover,
 * upgrade plan/start/abort/finalize/rollback) with the bearer token, and
 * the drawing of the three pages: #/overview, #/events, #/upgrade.
 *
 * Drawing: each refresh builds a fresh DOM tree for a region and morph()
 * patches it into the live one, so elements keep their identity (an open
 * <select>, a chosen option, focus) across the once-a-second redraws.
 * Clicks are handled by one delegated listener on [data-action] elements.
 * Server text is only ever set as text, never as HTML.
 *
 * Stable test hooks (data-testid), for tests/browser/dashboard.mjs:
 *   header     cluster-name, conn-state (data-state live|down|connecting),
 *              nav-overview, nav-events, nav-upgrade, token-forget
 *   pages      page-overview, page-events, page-upgrade
 *   overview   summary-node, summary-config, summary-sessions,
 *              summary-upgrade, summary-alarms,
 *              node-NAME (data-state alive|lost), node-NAME-state,
 *              node-NAME-version, node-NAME-roles,
 *              group-G (a row), group-G-primary, group-G-state (this
 *              node's state in G), group-G-manual,
 *              failover-group-G (button), failover-group-G-to (select),
 *              failover-group-G-reset (button, when the manual flag is set),
 *              sync-config, sync-sessions, alarms
 *   events     events-list (ol), event-row (li; data-event, data-node,
 *              data-seq, data-level), events-stream-state (data-state
 *              connecting|live|reconnecting), events-filter, events-pause,
 *              events-count
 *   upgrade    image-select, opt-force, opt-disruptive, opt-no-failback,
 *              plan-button, start-button, abort-button, finalize-button,
 *              rollback-button, images-refresh,
 *              plan-result, plan-summary (data-all-ok true|false),
 *              plan-check-CODE (data-ok true|false), plan-step-N,
 *              upgrade-state (data-state: the status's state), upgrade-phase,
 *              upgrade-versions, upgrade-progress, upgrade-error,
 *              upgrade-node-NAME (data-state), upgrade-node-NAME-version,
 *              upgrade-step-N (data-status pending|running|done|failed|
 *              skipped), images-installed, probe-panel (data-state
 *              ok|none|unreadable|down), probe-tcp, probe-new, probe-gap,
 *              probe-lost, probe-resets
 *   dialogs    token-dialog, token-input, token-save, token-cancel,
 *              token-error, confirm-dialog, confirm-ok, confirm-cancel
 *   messages   messages, action-error (a failed write: its title, the
 *              server's sentence, the failed checks as check-CODE items),
 *              action-ok (a write done)
 */

const TOKEN_KEY = 'tandem.api.token';
const POLL_MS = 1000;
const GET_TIMEOUT_MS = 4000;
const POST_TIMEOUT_MS = 60000;
const IMAGES_EVERY_MS = 5000;
const EVENTS_MAX = 1000;          // rows kept on the events page
const EVENTS_LIMIT = 200;         // events asked of the stream at first connect
const STREAM_SILENCE_MS = 40000;  // the server sends a keepalive every 15 s
const PAGES = ['overview', 'events', 'upgrade'];
const CAUSE_KEYS = ['reason', 'via', 'cause', 'by', 'trigger', 'why'];

const st = {
	page: 'overview',
	cluster: null,
	upgrade: null,
	images: null,
	imagesAt: 0,
	versionsKey: '',   // upgrade state and node versions when the images were last asked for
	imagesError: '',
	probe: { state: 'unknown', body: null, prev: null, rate: {} },
	conn: { state: 'connecting', since: Date.now(), error: '' },
	plan: null,          // the last plan's answer, drawn on the upgrade page
	busy: new Set(),     // actions waiting for their answer
};

// ---------------------------------------------------------------- DOM helpers

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs, ...kids) {
	const el = document.createElement(tag);
	if (attrs) {
		for (const [k, v] of Object.entries(attrs)) {
			if (v === false || v == null) continue;
			if (k === 'class') el.className = v;
			else el.setAttribute(k, v === true ? '' : String(v));
		}
	}
	for (const k of kids.flat(Infinity)) {
		if (k == null || k === false) continue;
		el.append(k instanceof Node ? k : String(k));
	}
	return el;
}

// morph(live, fresh): make live's children look like fresh's, keeping the
// live elements that match by tag (and data-key, where given).
function morph(live, fresh) {
	const a = [...live.childNodes];
	const b = [...fresh.childNodes];
	for (let i = 0; i < b.length; i++) {
		if (i < a.length) morphNode(a[i], b[i]);
		else live.appendChild(b[i]);
	}
	for (let i = b.length; i < a.length; i++) a[i].remove();
}

function morphNode(from, to) {
	if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName ||
	    (from.nodeType === 1 && from.getAttribute('data-key') !== to.getAttribute('data-key'))) {
		from.replaceWith(to);
		return;
	}
	if (from.nodeType !== 1) {
		if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
		return;
	}
	for (const at of [...from.attributes])
		if (!to.hasAttribute(at.name)) from.removeAttribute(at.name);
	for (const at of to.attributes)
		if (from.getAttribute(at.name) !== at.value) from.setAttribute(at.name, at.value);
	morph(from, to);
}

// The server's Content-Security-Policy (style-src 'self') forbids style
// attributes, so a bar's width travels as data-width and is set through
// the CSSOM, which the policy allows.
function render(sel, ...kids) {
	const live = $(sel);
	if (!live) return;
	morph(live, h('div', null, ...kids));
	for (const el of live.querySelectorAll('[data-width]')) {
		const w = `${Math.max(0, Math.min(100, Number(el.dataset.width) || 0))}%`;
		if (el.style.width !== w) el.style.width = w;
	}
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- formatting

function fmtDuration(s) {
	if (s == null || !Number.isFinite(+s)) return '—';
	s = Math.max(0, Math.floor(+s));
	if (s < 60) return `${s} s`;
	if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
	if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
	return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function fmtMs(ms) {
	if (ms == null || !Number.isFinite(+ms)) return '';
	ms = +ms;
	if (ms < 1000) return `${Math.round(ms)} ms`;
	if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
	return fmtDuration(ms / 1000);
}

function fmtBytes(n) {
	if (n == null || !Number.isFinite(+n)) return '';
	n = +n;
	const u = ['B', 'KiB', 'MiB', 'GiB'];
	let i = 0;
	while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
	return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
}

function toDate(t) {
	if (t == null) return null;
	if (typeof t === 'number') return new Date(t < 1e12 ? t * 1000 : t);
	const d = new Date(t);
	return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

function fmtClock(d) {
	if (!d) return '';
	const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
	const now = new Date();
	if (d.toDateString() === now.toDateString()) return time;
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function fmtDate(d) {
	if (!d) return '';
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fmtValue(v) {
	if (v === null) return 'null';
	if (typeof v === 'object') return JSON.stringify(v);
	return String(v);
}

function badge(text, tone, attrs) {
	return h('span', { class: `badge ${tone || ''}`, ...attrs }, text);
}

const GROUP_TONE = { primary: 'good', secondary: 'info', ineligible: 'warn', init: '', observing: '' };
const UPG_TONE = { idle: '', running: 'info', aborting: 'warn', completed: 'good', aborted: 'warn', rolled_back: 'warn', failed: 'bad' };
const UNODE_TONE = {
	pending: '', fetching: 'info', installing: 'info', restarting: 'info', resyncing: 'info',
	upgraded: 'good', reverting: 'warn', reverted: 'warn', failed: 'bad',
};

// ---------------------------------------------------------------- HTTP

async function request(method, path, body, token) {
	const opt = {
		method,
		headers: { Accept: 'application/json' },
		cache: 'no-store',
		signal: AbortSignal.timeout(method === 'GET' ? GET_TIMEOUT_MS : POST_TIMEOUT_MS),
	};
	if (body !== undefined) {
		opt.headers['Content-Type'] = 'application/json';
		opt.body = JSON.stringify(body);
	}
	if (token) opt.headers.Authorization = `Bearer ${token}`;
	let r;
	try {
		r = await fetch(path, opt);
	} catch (e) {
		return { status: 0, ok: false, body: null, error: e.name === 'TimeoutError' ? 'no answer in time' : 'the node did not answer' };
	}
	let j = null;
	try { j = await r.json(); } catch { /* not JSON: the status says enough */ }
	return { status: r.status, ok: r.ok && !(j && j.ok === false), body: j, error: j && j.error };
}

// post(): a write. Asks for the token when none is kept, and again after a
// 401; null when the operator cancels.
async function post(path, body) {
	let why = '';
	for (let tries = 0; tries < 5; tries++) {
		let token = sessionStorage.getItem(TOKEN_KEY);
		if (!token) {
			token = await askToken(why);
			if (!token) return null;
		}
		const r = await request('POST', path, body, token);
		if (r.status !== 401) return r;
		sessionStorage.removeItem(TOKEN_KEY);
		why = (r.body && r.body.error) || 'The node refused this token.';
	}
	return null;
}

// ---------------------------------------------------------------- dialogs

let tokenAsk = null;

function askToken(why) {
	if (tokenAsk) return tokenAsk;
	const d = $('#token-dialog');
	const err = $('#token-error');
	err.hidden = !why;
	err.textContent = why || '';
	$('#token-input').value = '';
	d.returnValue = '';
	tokenAsk = new Promise((resolve) => {
		d.addEventListener('close', () => {
			const t = d.returnValue === 'ok' ? $('#token-input').value.trim() : '';
			tokenAsk = null;
			if (t) sessionStorage.setItem(TOKEN_KEY, t);
			resolve(t || null);
		}, { once: true });
	});
	d.showModal();
	$('#token-input').focus();
	return tokenAsk;
}

function confirmAction(title, text, okLabel, danger) {
	const d = $('#confirm-dialog');
	$('#confirm-title').textContent = title;
	$('#confirm-text').textContent = text;
	const ok = $('#confirm-ok');
	ok.textContent = okLabel || 'Confirm';
	ok.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
	d.returnValue = '';
	return new Promise((resolve) => {
		d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
		d.showModal();
		ok.focus();
	});
}

// ---------------------------------------------------------------- messages

function showMessage(kind, title, text, checks) {
	const box = $('#messages');
	const failed = (checks || []).filter((c) => c && c.ok === false);
	const m = h('div', { class: `msg ${kind}`, 'data-testid': kind === 'bad' ? 'action-error' : 'action-ok', role: kind === 'bad' ? 'alert' : 'status' },
		h('button', { type: 'button', class: 'msg-close', 'data-action': 'msg-close', 'aria-label': 'Dismiss' }, '×'),
		h('div', { class: 'msg-title' }, title),
		text ? h('div', { class: 'msg-text', 'data-testid': 'action-error-text' }, text) : null,
		failed.length ? h('ul', null, failed.map((c) => h('li', { 'data-testid': `check-${c.code}` }, h('code', null, c.code), ' ', c.message || ''))) : null);
	box.prepend(m);
	while (box.children.length > 4) box.lastElementChild.remove();
	if (kind !== 'bad') setTimeout(() => m.remove(), 6000);
}

// report(): the outcome of a write, in words. True when it was done.
function report(r, what, okText) {
	if (!r) return false;
	if (r.ok) {
		if (okText) showMessage('good', okText(r.body || {}), '');
		return true;
	}
	const b = r.body || {};
	let title;
	if (r.status === 0) title = `${what}: ${r.error}`;
	else if (r.status === 409) title = `${what}: refused by the cluster`;
	else if (r.status === 400) title = `${what}: the request was not accepted`;
	else if (r.status === 503) title = `${what}: unavailable on this node`;
	else title = `${what} failed (HTTP ${r.status})`;
	let text = b.error || (r.status ? '' : 'Check that tandemd is running and reachable.');
	if (b.upgrade_code && !String(text).includes(b.upgrade_code)) text = `${b.upgrade_code}: ${text}`;
	showMessage('bad', title, text, b.checks);
	return false;
}

async function busy(key, btn, fn) {
	if (st.busy.has(key)) return;
	st.busy.add(key);
	if (btn) { btn.classList.add('busy'); btn.disabled = true; }
	try {
		await fn();
	} finally {
		st.busy.delete(key);
		if (btn && btn.isConnected) { btn.classList.remove('busy'); btn.disabled = false; }
		drawAll();
	}
}

// ---------------------------------------------------------------- polling

let refreshing = null;
let refreshAgain = false;

function refresh() {
	if (refreshing) { refreshAgain = true; return refreshing; }
	refreshing = (async () => {
		do {
			refreshAgain = false;
			await refreshOnce();
		} while (refreshAgain);
		refreshing = null;
	})();
	return refreshing;
}

async function refreshOnce() {
	const wantImages = st.page === 'upgrade' && Date.now() - st.imagesAt > IMAGES_EVERY_MS;
	const [c, u, p, im] = await Promise.all([
		request('GET', '/api/cluster'),
		request('GET', '/api/cluster/upgrade/status'),
		st.page === 'upgrade' ? request('GET', '/api/probe') : null,
		wantImages ? request('GET', '/api/images') : null,
	]);
	if (c.ok && c.body) {
		st.cluster = c.body;
		if (st.conn.state !== 'live') st.conn = { state: 'live', since: Date.now(), error: '' };
	} else if (st.conn.state !== 'down') {
		st.conn = { state: 'down', since: Date.now(), error: c.error || `HTTP ${c.status}` };
	}
	if (u.ok && u.body) st.upgrade = u.body;
	// The installed versions change under an upgrade: a new upgrade state or
	// a node on another version fetches the image list again at the next poll.
	const versionsKey = [st.upgrade && st.upgrade.state, st.cluster && st.cluster.version,
		...((st.cluster && st.cluster.peers) || []).map((x) => `${x.node}=${x.version}`)].join('|');
	if (versionsKey !== st.versionsKey) {
		st.versionsKey = versionsKey;
		st.imagesAt = 0;
	}
	if (p) takeProbe(p);
	if (im) {
		st.imagesAt = Date.now();
		if (im.ok && im.body) { st.images = im.body; st.imagesError = ''; }
		else st.imagesError = im.error || (im.status ? `HTTP ${im.status}` : 'the node did not answer');
	}
	drawAll();
}

async function pollLoop() {
	for (;;) {
		const t0 = Date.now();
		await refresh();
		await sleep(Math.max(100, POLL_MS - (Date.now() - t0)));
	}
}

function takeProbe(p) {
	const pr = st.probe;
	if (p.status === 200 && p.body) {
		const now = Date.now();
		const rate = {};
		if (pr.body && pr.at) {
			const dt = (now - pr.at) / 1000;
			for (const k of ['new_ok', 'udp_received', 'tcp_echoes'])
				if (typeof p.body[k] === 'number' && typeof pr.body[k] === 'number' && dt > 0)
					rate[k] = Math.max(0, (p.body[k] - pr.body[k]) / dt);
		}
		st.probe = { state: 'ok', body: p.body, at: now, rate };
	} else if (p.status === 404) {
		st.probe = { state: 'none', body: null, rate: {} };
	} else if (p.status === 503) {
		st.probe = { state: 'unreadable', body: null, rate: {}, error: p.error };
	} else {
		st.probe = { ...pr, state: pr.body ? 'stale' : 'down' };
	}
}

// ---------------------------------------------------------------- drawing

function drawAll() {
	drawHeader();
	if (st.page === 'overview') drawOverview();
	if (st.page === 'upgrade') drawUpgrade();
}

function drawHeader() {
	const c = st.cluster;
	$('[data-testid="cluster-name"]').textContent = c ? `${c.cluster || ''}${c.cluster_id != null ? ` · id ${c.cluster_id}` : ''} · via ${c.node}` : '';
	const el = $('[data-testid="conn-state"]');
	el.dataset.state = st.conn.state;
	const secs = Math.round((Date.now() - st.conn.since) / 1000);
	el.querySelector('.conn-text').textContent =
		st.conn.state === 'live' ? 'live' :
		st.conn.state === 'down' ? `no answer for ${fmtDuration(secs)}, retrying` : 'connecting…';
	el.title = st.conn.error || '';
	document.title = c ? `Tandem · ${c.cluster || c.node}` : 'Tandem';
}

// nodesOf(): this node and its peers, in one list.
function nodesOf(c) {
	const self = {
		node: c.node, state: 'alive', version: c.version, maintenance: c.maintenance,
		self: true, links: null, since_s: c.uptime_s, tilt: c.tilt,
	};
	return [self, ...(c.peers || [])];
}

function drawOverview() {
	const c = st.cluster;
	if (!c) {
		render('#overview', h('p', { class: 'muted' }, st.conn.state === 'down' ? `The node does not answer (${st.conn.error}); retrying every second.` : 'Waiting for the cluster\'s status…'));
		return;
	}
	const u = st.upgrade || c.upgrade || {};
	const nodes = nodesOf(c);
	const alive = nodes.filter((n) => n.state === 'alive').length;
	const alarms = c.alarms || [];
	const cfg = c.config || {};
	const ses = c.sessions || {};
	const stale = st.conn.state === 'down';

	const summary = h('div', { class: 'summary' },
		stat('Nodes', `${alive} / ${nodes.length} alive`, nodes.map((n) => n.node).join(', '), alive < nodes.length ? 'bad' : '', 'summary-nodes'),
		stat('This node', c.node, `version ${c.version}${c.protocol ? ` · protocol ${c.protocol.level}` : ''}`, c.maintenance ? 'warn' : '', 'summary-node'),
		stat('Configuration', `generation ${cfg.generation ?? '—'}`, cfg.in_sync ? 'in sync on every node' : 'not in sync', cfg.in_sync === false ? 'warn' : '', 'summary-config'),
		stat('Sessions', `${ses.count ?? '—'}`, ses.sync === 'off' ? 'sync off' : ses.in_sync ? 'in sync' : 'syncing', ses.in_sync === false && ses.sync !== 'off' ? 'warn' : '', 'summary-sessions'),
		stat('Upgrade', (u.state || 'idle').replace('_', ' '), u.state === 'running' ? (u.phase || '') : u.to ? `${u.from} → ${u.to}${u.finalized === false && u.state === 'completed' ? ', not finalized' : ''}` : (u.frozen ? 'configuration frozen' : 'nothing running'),
			u.state === 'failed' ? 'bad' : (u.state === 'running' || u.state === 'aborting') ? 'warn' : '', 'summary-upgrade'),
		stat('Alarms', String(alarms.length), alarms.length ? 'see below' : 'none', alarms.length ? 'warn' : '', 'summary-alarms'));

	const groupRoles = (name) => (c.groups || []).filter((g) => g.primary === name).map((g) => g.id);

	const nodeCards = h('div', { class: 'card' },
		h('div', { class: 'card-head' }, h('h2', null, 'Nodes'), h('span', { class: 'sub' }, stale ? 'last known state' : `as ${c.node} sees them`)),
		h('div', { class: 'nodes' }, nodes.map((n) => {
			const roles = groupRoles(n.node);
			const lost = n.state !== 'alive';
			return h('div', { class: `node ${lost ? 'lost' : ''}`, 'data-testid': `node-${n.node}`, 'data-state': n.state, 'data-key': n.node },
				h('div', { class: 'node-head' },
					h('span', { class: 'node-name' }, n.node, n.self ? h('span', { class: 'tag tag-self' }, 'serving this page') : null),
					badge(n.maintenance ? 'maintenance' : n.state, lost ? 'bad' : n.maintenance ? 'warn' : 'good', { 'data-testid': `node-${n.node}-state` })),
				h('dl', { class: 'node-meta' },
					h('dt', null, 'Version'), h('dd', { 'data-testid': `node-${n.node}-version` }, n.version || '—'),
					h('dt', null, 'Primary of'), h('dd', { 'data-testid': `node-${n.node}-roles` }, roles.length ? roles.map((g) => `group ${g}`).join(', ') : 'no group'),
					h('dt', null, n.self ? 'Up for' : 'State for'), h('dd', null, fmtDuration(n.since_s)),
					n.self ? [h('dt', null, 'Mode'), h('dd', null, n.maintenance ? 'maintenance' : n.tilt ? 'observing (after a stall)' : 'in service')] :
						[h('dt', null, 'Links'), h('dd', null, h('div', { class: 'links' }, (n.links || []).map((l) => h('span', { class: `link ${l.state === 'up' ? '' : 'down'}`, title: `link ${l.index}: ${l.rx ?? 0} heartbeats received` },
							h('span', { class: 'ldot' }), `${l.index}: ${l.address} ${l.state}`, l.state === 'up' && l.last_rx_ms_ago != null ? h('span', { class: 'faint' }, ` · ${l.last_rx_ms_ago} ms ago`) : null))))]));
		})));

	const others = (g) => nodes.map((n) => n.node).filter((n) => n !== g.primary);
	const groups = h('div', { class: 'card' },
		h('div', { class: 'card-head' }, h('h2', null, 'Redundancy groups'), h('span', { class: 'sub' }, 'group 0 is the control plane: configuration authority and upgrade coordinator')),
		h('table', null,
			h('thead', null, h('tr', null, ['Group', 'Primary', `State on ${c.node}`, 'Priority', 'Preempt', 'Manual', 'VIPs', 'Epoch', ''].map((t, i) => h('th', { class: i === 3 || i === 7 ? 'num' : null }, t)))),
			h('tbody', null, (c.groups || []).map((g) => {
				const targets = others(g);
				const bkey = `failover-${g.id}`;
				return h('tr', { 'data-testid': `group-${g.id}`, 'data-key': String(g.id) },
					h('td', null, h('strong', null, `${g.id}`), g.id === 0 ? h('span', { class: 'faint small' }, ' control') : null),
					h('td', null, h('span', { class: 'primary-name', 'data-testid': `group-${g.id}-primary` }, g.primary || 'none')),
					h('td', null, badge(g.state, GROUP_TONE[g.state] ?? 'bad', { 'data-testid': `group-${g.id}-state` }),
						h('span', { class: 'faint small' }, ` for ${fmtDuration(g.since_s)}`)),
					h('td', { class: 'num' }, `${g.priority}`, g.eligible === false ? h('span', { class: 'faint small' }, ' (ineligible)') : null),
					h('td', null, g.preempt ? (g.preempt_suspended ? badge('suspended', 'warn') : 'on') : 'off'),
					h('td', { 'data-testid': `group-${g.id}-manual` }, g.manual ? badge(g.manual_target ? `to ${g.manual_target}` : 'set', 'warn') : h('span', { class: 'faint' }, 'no')),
					h('td', { class: 'vips' }, (g.vips || []).length ? g.vips.map((v) => h('div', null, `${v.address} ${v.interface}`)) : h('span', { class: 'faint' }, '—')),
					h('td', { class: 'num faint' }, `${g.epoch ?? ''}`),
					h('td', null, h('div', { class: 'failover' },
						g.manual ? h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'data-action': 'failover-reset', 'data-group': g.id, 'data-testid': `failover-group-${g.id}-reset`, title: 'Clear the manual flag: the group follows its priorities again' }, 'Clear manual') : null,
						h('select', { 'data-testid': `failover-group-${g.id}-to`, 'aria-label': `Move group ${g.id} to`, disabled: targets.length === 0 },
							targets.map((n) => h('option', { value: n }, n))),
						h('button', { type: 'button', class: `btn btn-small ${st.busy.has(bkey) ? 'busy' : ''}`, 'data-action': 'failover', 'data-group': g.id, 'data-testid': `failover-group-${g.id}`, disabled: targets.length === 0 || st.busy.has(bkey) }, 'Fail over'))));
			}))));

	const peersSync = ses.peers || [];
	const bulk = ses.bulk || {};
	const sync = h('div', { class: 'card' },
		h('div', { class: 'card-head' }, h('h2', null, 'Sync health')),
		h('div', { class: 'sync-block', 'data-testid': 'sync-config' },
			h('h3', null, 'Configuration'),
			h('dl', { class: 'kv' },
				h('dt', null, 'Generation'), h('dd', null, `${cfg.generation ?? '—'} (committed ${cfg.committed ?? '—'}, applied ${cfg.applied ?? '—'})`),
				h('dt', null, 'State'), h('dd', null, cfg.in_sync ? badge('in sync', 'good') : badge('out of sync', 'warn'), cfg.busy ? badge(`applying ${cfg.busy_generation}`, 'info') : null, u.frozen ? badge('frozen by the upgrade', 'warn') : null),
				h('dt', null, 'Authority'), h('dd', null, cfg.coordinator || '—'))),
		h('div', { class: 'sync-block', 'data-testid': 'sync-sessions' },
			h('h3', null, 'Sessions'),
			h('dl', { class: 'kv' },
				h('dt', null, 'Sync'), h('dd', null, ses.sync === 'off' ? badge('off', '') : ses.in_sync ? badge('in sync', 'good') : badge('syncing', 'warn'),
					ses.role ? h('span', { class: 'muted' }, ` ${c.node} is ${ses.role}${ses.source ? `, source ${ses.source}` : ''}`) : null),
				h('dt', null, 'Sessions'), h('dd', null, `${ses.count ?? '—'}`),
				bulk.active ? [h('dt', null, 'Bulk sync'), h('dd', null, `${bulk.records} / ${bulk.total}`, h('div', { class: 'progress' }, h('span', { 'data-width': bulk.total ? Math.min(100, (100 * bulk.records) / bulk.total) : 0 })))] : null),
			peersSync.length ? h('table', { class: 'spaced' },
				h('thead', null, h('tr', null, h('th', null, 'Peer'), h('th', null, 'State'), h('th', { class: 'num' }, 'Sessions'), h('th', { class: 'num' }, 'Backlog'), h('th', { class: 'num' }, 'Lag'))),
				h('tbody', null, peersSync.map((p) => h('tr', { 'data-key': p.node },
					h('td', null, p.node),
					h('td', null, !p.alive ? badge('lost', 'bad') : p.stalled ? badge('stalled', 'bad') : p.in_sync ? badge(p.state || 'in sync', 'good') : badge(p.state || 'syncing', 'warn')),
					h('td', { class: 'num' }, `${p.count ?? ''}`),
					h('td', { class: 'num' }, `${p.backlog ?? ''}`),
					h('td', { class: 'num' }, p.lag_ms != null ? `${p.lag_ms} ms` : ''))))) : null));

	const alarmCard = alarms.length ? h('div', { class: 'card', 'data-testid': 'alarms' },
		h('div', { class: 'card-head' }, h('h2', null, 'Alarms')),
		alarms.map((a) => h('div', { class: 'alarm' }, typeof a === 'object' && a ? Object.entries(a).map(([k, v]) => `${k}=${fmtValue(v)}`).join('  ') : String(a)))) : null;

	const upBanner = (u.state === 'running' || u.state === 'aborting') ? h('div', { class: 'alarm alarm-info' },
		`Upgrade ${u.from} → ${u.to} ${u.state}: ${u.phase || ''}. `, h('a', { href: '#/upgrade' }, 'Follow it on the upgrade page')) : null;

	render('#overview', upBanner, summary, alarmCard, groups, h('div', { class: 'grid-2' }, nodeCards, sync));
}

function stat(label, value, note, tone, testid) {
	return h('div', { class: `stat ${tone || ''}`, 'data-testid': testid },
		h('div', { class: 'label' }, label), h('div', { class: 'value', title: value }, value), h('div', { class: 'note', title: note }, note || '\u00a0'));
}

// ---------------------------------------------------------------- upgrade page

function drawUpgrade() {
	drawImageSelect();
	drawUpgradeButtons();
	drawUpgradeStatus();
	drawPlan();
	drawInstalled();
	drawProbe();
}

function drawImageSelect() {
	const sel = $('#image-select');
	const im = st.images;
	const files = im && Array.isArray(im.files) ? im.files : null;
	let opts;
	if (!im) opts = [h('option', { value: '' }, st.imagesError ? `images unavailable: ${st.imagesError}` : 'loading images…')];
	else if (!files) opts = [h('option', { value: '' }, 'no images directory (api.images_dir) on this node')];
	else if (!files.length) opts = [h('option', { value: '' }, 'no image in the images directory')];
	else {
		const sorted = [...files].sort((a, b) => String(b.name).localeCompare(String(a.name), undefined, { numeric: true }));
		opts = [h('option', { value: '', 'data-key': '' }, 'choose an image…'),
			...sorted.map((f) => h('option', { value: f.path, 'data-key': f.path, title: f.path },
				`${f.name}  ·  ${fmtBytes(f.size)}${f.mtime != null ? `  ·  ${fmtDate(toDate(f.mtime))}` : ''}`))];
	}
	morph(sel, h('select', null, opts));
}

function upgradeOptions() {
	return {
		image_path: $('#image-select').value,
		force: $('#opt-force').checked,
		disruptive: $('#opt-disruptive').checked,
		no_failback: $('#opt-no-failback').checked,
	};
}

function drawUpgradeButtons() {
	const s = (st.upgrade && st.upgrade.state) || 'idle';
	const known = !!st.upgrade;
	const running = s === 'running' || s === 'aborting';
	const unfinalized = s === 'completed' && st.upgrade.finalized === false;
	const noImage = !$('#image-select').value;
	const set = (action, disabled) => {
		const b = $(`[data-action="${action}"]`);
		if (!b) return;
		b.disabled = st.busy.has(action) || disabled;
		b.classList.toggle('busy', st.busy.has(action));
	};
	set('plan', noImage);
	set('start', noImage || (known && running));
	set('abort', known && !running);
	set('finalize', known && !unfinalized);
	set('rollback', known && !(unfinalized || s === 'aborted' || s === 'failed'));
}

function drawUpgradeStatus() {
	const u = st.upgrade;
	if (!u) {
		render('#upgrade-status', h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Waiting for the upgrade status…')));
		return;
	}
	const state = u.state || 'idle';
	const steps = u.steps || [];
	const done = steps.filter((s) => s.status === 'done' || s.status === 'skipped').length;
	const tone = UPG_TONE[state] ?? '';
	const flags = ['force', 'disruptive', 'no_failback'].filter((f) => u[f]).map((f) => f.replace('_', ' '));

	const head = h('div', { class: 'card' },
		h('div', { class: 'card-head' },
			h('h2', null, u.id != null ? `Upgrade ${u.id}` : 'Upgrade'),
			h('span', { class: 'sub' }, st.conn.state === 'down' ? 'last known state (the node is not answering: it may be restarting into the new version)' : u.coordinator ? `coordinated by ${u.coordinator}` : '')),
		h('div', { class: 'state-line' },
			h('span', { class: `state-big ${tone}`, 'data-testid': 'upgrade-state', 'data-state': state }, state.replace('_', ' ')),
			u.phase && u.phase !== state ? h('span', { class: 'muted', 'data-testid': 'upgrade-phase' }, u.phase) : null,
			u.frozen ? badge('configuration frozen', 'warn') : null,
			state === 'completed' ? (u.finalized ? badge('finalized', 'good') : badge('not finalized: roll back or finalize', 'warn')) : null),
		state === 'idle' && !u.to ? h('p', { class: 'muted' }, `No upgrade recorded. The cluster speaks protocol level ${u.protocol && u.protocol.level != null ? u.protocol.level : '—'}.`) :
			h('div', { class: 'upgrade-facts' },
				h('span', { 'data-testid': 'upgrade-versions' }, h('span', { class: 'muted' }, 'Versions'), `${u.from || '?'} → ${u.to || '?'}`),
				h('span', null, h('span', { class: 'muted' }, 'Elapsed'), fmtMs((u.elapsed_s || 0) * 1000)),
				u.image ? h('span', null, h('span', { class: 'muted' }, 'Image'), `${fmtBytes(u.image.bytes)}${u.image.digest ? ` · ${String(u.image.digest).slice(0, 12)}` : ''}`) : null,
				flags.length ? h('span', null, h('span', { class: 'muted' }, 'Options'), flags.join(', ')) : null),
		steps.length ? h('div', { class: `bar-outer ${state === 'completed' ? 'good' : state === 'failed' ? 'bad' : ''}`, 'data-testid': 'upgrade-progress', 'data-done': done, 'data-total': steps.length, title: `${done} of ${steps.length} steps` },
			h('span', { 'data-width': steps.length ? (100 * done) / steps.length : 0 })) : null,
		u.error ? h('div', { class: 'error-box', 'data-testid': 'upgrade-error' },
			h('div', null, h('strong', null, u.error.code || 'error'), ' ', u.error.message || ''),
			u.error.recovery ? h('div', { class: 'recovery' }, h('strong', null, 'Recovery: '), u.error.recovery) : null) : null);

	const nodes = (u.nodes || []).length ? h('div', { class: 'card' },
		h('div', { class: 'card-head' }, h('h2', null, 'Nodes')),
		u.nodes.map((n) => h('div', { class: 'unode-row', 'data-testid': `upgrade-node-${n.node}`, 'data-state': n.state, 'data-key': n.node },
			h('strong', null, n.node),
			badge(n.state, UNODE_TONE[n.state] ?? ''),
			h('span', { class: 'mono', 'data-testid': `upgrade-node-${n.node}-version` }, n.version || '—'),
			h('span', { class: 'muted small' }, n.alive === false ? 'not reachable' : (n.detail || ''))))) : null;

	const stepList = steps.length ? h('div', { class: 'card' },
		h('div', { class: 'card-head' }, h('h2', null, 'Steps'), h('span', { class: 'sub' }, `${done} of ${steps.length} done`)),
		h('ol', { class: 'steps', 'data-testid': 'upgrade-steps' }, steps.map((s) => {
			const dur = s.end_ms != null && s.start_ms != null ? fmtMs(s.end_ms - s.start_ms) :
				s.status === 'running' && s.start_ms != null && u.elapsed_s != null ? fmtMs(Math.max(0, u.elapsed_s * 1000 - s.start_ms)) : '';
			const icon = { done: '✓', running: '●', failed: '✕', skipped: '–' }[s.status] || String(s.index + 1);
			return h('li', { class: 'step', 'data-testid': `upgrade-step-${s.index}`, 'data-status': s.status, 'data-key': String(s.index) },
				h('span', { class: 'icon', 'aria-hidden': 'true' }, icon),
				h('span', { class: 'text' }, s.text || s.kind, s.rollback ? h('span', { class: 'rb' }, '  rollback') : null),
				h('span', { class: 'muted small' }, s.status),
				h('span', { class: 'dur' }, dur));
		}))) : null;

	render('#upgrade-status', head, nodes, stepList);
}

function drawPlan() {
	const p = st.plan;
	if (!p) { render('#plan-result'); return; }
	const b = p.body || {};
	const checks = b.checks || [];
	const failed = checks.filter((c) => c.ok === false);
	const allOk = p.status === 200 && b.all_ok !== false && failed.length === 0;
	render('#plan-result', h('div', { class: 'card' },
		h('div', { class: 'card-head' },
			h('h2', null, 'Pre-check plan'),
			h('span', { class: 'sub' }, p.name)),
		h('div', { class: 'state-line', 'data-testid': 'plan-summary', 'data-all-ok': String(allOk) },
			allOk ? badge('every check passed', 'good') : badge(failed.length ? `${failed.length} check${failed.length > 1 ? 's' : ''} failed` : 'refused', 'bad'),
			b.image && b.image.version ? h('span', { class: 'muted' }, `${b.from || '?'} → ${b.image.version}${b.disruptive ? ' (disruptive)' : ''}`) : null),
		!allOk && b.error ? h('p', { class: 'dialog-error' }, b.error) : null,
		checks.length ? h('ul', { class: 'checks spaced' }, [...failed, ...checks.filter((c) => c.ok !== false)].map((c) =>
			h('li', { class: c.ok === false ? 'failed' : '', 'data-testid': `plan-check-${c.code}`, 'data-ok': String(c.ok !== false) },
				h('span', { class: c.ok === false ? 'fail' : 'ok' }, c.ok === false ? '✕' : '✓'),
				h('span', null, h('code', null, c.code), c.message || '')))) : null,
		(b.steps || []).length ? h('details', { class: 'probe-extra' },
			h('summary', null, `The ${b.steps.length} steps it would run`),
			h('ol', { class: 'steps' }, b.steps.map((s) => h('li', { class: 'step', 'data-testid': `plan-step-${s.index}`, 'data-status': 'pending' },
				h('span', { class: 'icon' }, String(s.index + 1)), h('span', { class: 'text' }, s.text || s.kind), h('span'), h('span'))))) : null));
}

function drawInstalled() {
	const im = st.images;
	if (!im) { render('#images-installed'); return; }
	const inst = im.installed || [];
	render('#images-installed', h('div', { class: 'card', 'data-testid': 'images-installed' },
		h('div', { class: 'card-head' }, h('h2', null, 'Installed versions'), h('span', { class: 'sub' }, im.node ? `on ${im.node}` : '')),
		h('dl', { class: 'kv' },
			h('dt', null, 'Running'), h('dd', null, im.running || '—'),
			h('dt', null, 'Active'), h('dd', null, im.active || '—', im.confirmed === false ? badge('on trial', 'warn') : null),
			h('dt', null, 'Previous'), h('dd', null, im.previous || '—'),
			(im.peers || []).map((p) => [h('dt', null, p.node), h('dd', null, `${p.version || '—'} (${p.state})`)])),
		inst.length ? h('table', { class: 'spaced' },
			h('thead', null, h('tr', null, h('th', null, 'Version'), h('th', null, 'Role'), h('th', null, 'Installed'))),
			h('tbody', null, inst.map((i) => h('tr', { 'data-key': i.version }, h('td', { class: 'mono' }, i.version), h('td', null, i.role || ''), h('td', { class: 'muted small' }, fmtDate(toDate(i.installed_at))))))) : null));
}

function drawProbe() {
	const p = st.probe;
	const card = (state, ...kids) => h('div', { class: 'card', 'data-testid': 'probe-panel', 'data-state': state },
		h('div', { class: 'card-head' }, h('h2', null, 'Traffic probe'), h('span', { class: 'sub' }, 'tandem-probe through the cluster, read from api.probe_file')), ...kids);
	if (p.state === 'none') { render('#probe-panel', card('none', h('p', { class: 'muted' }, 'No probe configured on this node (api.probe_file).'))); return; }
	if (p.state === 'unreadable') { render('#probe-panel', card('unreadable', h('p', { class: 'muted' }, `The probe's status file cannot be read${p.error ? `: ${p.error}` : ''}.`))); return; }
	if (!p.body) { render('#probe-panel', card(p.state === 'unknown' ? 'unknown' : 'down', h('p', { class: 'muted' }, 'Waiting for the probe…'))); return; }
	const b = p.body;
	const num = (k) => (typeof b[k] === 'number' ? b[k] : null);
	const tcpTotal = num('tcp_connections') ?? num('tcp_requested');
	const tcpKept = num('tcp_survived');
	const gap = num('udp_max_gap_after_ready_ms') ?? num('udp_max_gap_ms');
	const resets = (num('tcp_resets') || 0) + (num('new_resets') || 0);
	const newFailed = num('new_failed');
	const lost = num('udp_lost');
	const rate = (k) => (p.rate[k] != null ? `${Math.round(p.rate[k])}/s now` : '');
	const tiles = h('div', { class: 'probe-grid' },
		tile('Long-lived TCP', tcpTotal != null ? `${tcpKept ?? '?'} / ${tcpTotal} kept` : '—', num('tcp_failed') ? `${num('tcp_failed')} failed` : 'established connections', tcpKept != null && tcpTotal != null && tcpKept < tcpTotal ? 'bad' : '', 'probe-tcp'),
		tile('New connections', num('new_ok') != null ? `${num('new_ok')} ok` : '—', `${newFailed ?? 0} failed${rate('new_ok') ? ` · ${rate('new_ok')}` : ''}`, newFailed ? 'bad' : '', 'probe-new'),
		tile('Longest UDP gap', gap != null ? fmtMs(gap) : '—', num('udp_hz') ? `at ${num('udp_hz')} Hz` : '', gap != null && gap >= 50 ? 'warn' : '', 'probe-gap'),
		tile('Resets / UDP lost', `${resets} / ${lost ?? '—'}`, num('udp_loss_pct') != null ? `${num('udp_loss_pct')} % lost` : '', resets ? 'bad' : lost ? 'warn' : '', 'probe-resets'));
	const scalars = Object.entries(b).filter(([, v]) => v === null || typeof v !== 'object');
	render('#probe-panel', card(p.state === 'stale' ? 'stale' : 'ok',
		p.state === 'stale' ? h('p', { class: 'muted small' }, 'The node is not answering; last known figures.') : null,
		tiles,
		h('span', { 'data-testid': 'probe-lost', hidden: true }, `${lost ?? ''}`),
		h('details', { class: 'probe-extra' }, h('summary', null, 'Every figure'),
			h('dl', { class: 'kv spaced' }, scalars.map(([k, v]) => [h('dt', null, k), h('dd', { class: 'mono' }, fmtValue(v))])))));
}

function tile(label, value, note, tone, testid) {
	return stat(label, value, note, tone, testid);
}

// ---------------------------------------------------------------- events page

const ev = {
	seen: new Set(),
	lastId: null,
	paused: false,
	held: [],
	count: 0,
	filter: '',
};

function setStreamState(s, why) {
	const el = $('[data-testid="events-stream-state"]');
	el.dataset.state = s;
	el.textContent = s === 'live' ? 'live' : s === 'reconnecting' ? `reconnecting${why ? ` (${why})` : ''}…` : 'connecting…';
}

// The stream names each event (event: NAME), and an EventSource hands a
// named event only to a listener registered for that name: the list of
// names is open-ended, so the stream is read with fetch and parsed here
// (text/event-stream, WHATWG HTML section 9.2), Last-Event-ID included.
async function streamEvents() {
	let backoff = 1000;
	for (;;) {
		const ctl = new AbortController();
		const headers = { Accept: 'text/event-stream' };
		if (ev.lastId != null) headers['Last-Event-ID'] = String(ev.lastId);
		let why = '';
		try {
			const r = await fetch(`/api/events/stream?limit=${EVENTS_LIMIT}`, { headers, signal: ctl.signal, cache: 'no-store' });
			if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
			setStreamState('live');
			backoff = 1000;
			await readSse(r.body, ctl);
			why = 'stream ended';
		} catch (e) {
			why = e.name === 'AbortError' ? 'silent stream' : (e.message || 'no answer');
		}
		setStreamState('reconnecting', why);
		await sleep(backoff);
		backoff = Math.min(backoff * 2, 8000);
	}
}

async function readSse(body, ctl) {
	const reader = body.getReader();
	const dec = new TextDecoder();
	let buf = '';
	let msg = { id: null, event: 'message', data: [] };
	let timer = setTimeout(() => ctl.abort(), STREAM_SILENCE_MS);
	try {
		for (;;) {
			const { value, done } = await reader.read();
			if (done) return;
			clearTimeout(timer);
			timer = setTimeout(() => ctl.abort(), STREAM_SILENCE_MS);
			buf += dec.decode(value, { stream: true });
			let nl;
			while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
				const line = buf.slice(0, nl);
				buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
				if (line === '') {
					if (msg.data.length) onStreamEvent(msg);
					msg = { id: null, event: 'message', data: [] };
					continue;
				}
				if (line[0] === ':') continue; // keepalive comment
				const c = line.indexOf(':');
				const field = c < 0 ? line : line.slice(0, c);
				let val = c < 0 ? '' : line.slice(c + 1);
				if (val[0] === ' ') val = val.slice(1);
				if (field === 'data') msg.data.push(val);
				else if (field === 'event') msg.event = val;
				else if (field === 'id') msg.id = val;
			}
		}
	} finally {
		clearTimeout(timer);
		reader.cancel().catch(() => {});
	}
}

function onStreamEvent(msg) {
	let e;
	try { e = JSON.parse(msg.data.join('\n')); } catch { return; }
	if (!e || typeof e !== 'object') return;
	if (msg.id != null && msg.id !== '') ev.lastId = msg.id;
	else if (e.seq != null) ev.lastId = e.seq;
	if (!e.event && msg.event !== 'message') e.event = msg.event;
	const key = `${e.node || ''}/${e.seq ?? ''}/${e.ts || ''}/${e.event || ''}`;
	if (ev.seen.has(key)) return;
	ev.seen.add(key);
	if (ev.paused) { ev.held.push(e); updateEventCount(); return; }
	addEventRow(e, true);
}

function eventFields(e) {
	if (e.fields && typeof e.fields === 'object') return Object.entries(e.fields);
	// Older records carry only kv: "a=1 b="two words"".
	const out = [];
	const re = /([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g;
	let m;
	while ((m = re.exec(e.kv || ''))) out.push([m[1], m[2].startsWith('"') ? m[2].slice(1, -1) : m[2]]);
	return out;
}

function addEventRow(e, fresh) {
	const list = $('#events-list');
	const d = toDate(e.ts);
	const fields = eventFields(e);
	const causes = fields.filter(([k]) => CAUSE_KEYS.includes(k));
	const rest = fields.filter(([k]) => !CAUSE_KEYS.includes(k));
	const level = e.level || 'info';
	const li = h('li', {
		class: `event level-${level} ${fresh ? 'fresh' : ''}`, 'data-testid': 'event-row',
		'data-event': e.event, 'data-node': e.node, 'data-seq': e.seq, 'data-level': level,
	},
	h('span', { class: 'ev-time', title: e.ts || '' }, fmtClock(d)),
	h('span', { class: `lvl lvl-${level}` }, level),
	h('span', { class: 'ev-name' }, e.event || '?'),
	h('span', { class: 'ev-node' }, e.node || ''),
	h('span', { class: 'ev-fields' },
		[...rest, ...causes].map(([k, v]) => h('span', { class: `fv ${CAUSE_KEYS.includes(k) ? 'cause' : ''}`, title: `${k}=${fmtValue(v)}` },
			h('span', { class: 'k' }, `${k}=`), fmtValue(v)))));
	li.hidden = !matchesFilter(li);
	const empty = list.querySelector('.empty');
	if (empty) empty.remove();
	list.prepend(li);
	ev.count++;
	while (list.children.length > EVENTS_MAX) list.lastElementChild.remove();
	updateEventCount();
}

function matchesFilter(li) {
	if (!ev.filter) return true;
	return li.textContent.toLowerCase().includes(ev.filter);
}

function updateEventCount() {
	const list = $('#events-list');
	const shown = [...list.children].filter((c) => !c.hidden && c.dataset.testid === 'event-row').length;
	$('#events-count').textContent = `${shown} shown${ev.held.length ? ` · ${ev.held.length} held while paused` : ''}`;
}

function initEvents() {
	$('#events-list').append(h('li', { class: 'empty' }, 'Waiting for events…'));
	$('#events-filter').addEventListener('input', (e) => {
		ev.filter = e.target.value.trim().toLowerCase();
		for (const li of $('#events-list').children) if (li.dataset.testid === 'event-row') li.hidden = !matchesFilter(li);
		updateEventCount();
	});
	$('#events-pause').addEventListener('change', (e) => {
		ev.paused = e.target.checked;
		if (!ev.paused) {
			const held = ev.held;
			ev.held = [];
			for (const x of held) addEventRow(x, true);
			updateEventCount();
		}
	});
	streamEvents();
}

// ---------------------------------------------------------------- actions

async function onAction(btn) {
	const a = btn.dataset.action;
	switch (a) {
	case 'msg-close': btn.closest('.msg').remove(); return;
	case 'token-cancel': btn.closest('dialog').close('cancel'); return;
	case 'confirm-cancel': btn.closest('dialog').close('cancel'); return;
	case 'forget-token':
		sessionStorage.removeItem(TOKEN_KEY);
		showMessage('good', 'The API token is forgotten in this tab.', '');
		return;
	case 'images-refresh':
		st.imagesAt = 0;
		await busy(a, btn, refresh);
		return;
	case 'failover': return failover(btn);
	case 'failover-reset': return failoverReset(btn);
	case 'plan': return plan(btn);
	case 'start': return start(btn);
	case 'abort': return upgradeWrite(btn, 'abort', '/api/cluster/upgrade/abort', 'Abort the upgrade?',
		'The cluster stops the upgrade and rolls the upgraded nodes back, standby first.', 'Abort upgrade', 'Abort requested');
	case 'finalize': return upgradeWrite(btn, 'finalize', '/api/cluster/upgrade/finalize', 'Finalize the upgrade?',
		'The cluster commits to the new version and starts speaking its protocol; rolling back is no longer possible.', 'Finalize', 'Upgrade finalized');
	case 'rollback': return upgradeWrite(btn, 'rollback', '/api/cluster/upgrade/rollback', 'Roll every node back?',
		'Every node returns to the previous version, in service, one at a time.', 'Roll back', 'Rollback started');
	default:
	}
}

async function failover(btn) {
	const g = Number(btn.dataset.group);
	const sel = $(`[data-testid="failover-group-${g}-to"]`);
	const to = sel ? sel.value : '';
	await busy(`failover-${g}`, btn, async () => {
		const body = to ? { group: g, to } : { group: g };
		const r = await post('/api/cluster/failover', body);
		report(r, `Failover of group ${g}`, (b) => `Group ${g} moved to ${b.primary || to || 'the next node'}`);
		await refresh();
	});
}

async function failoverReset(btn) {
	const g = Number(btn.dataset.group);
	await busy(`failover-reset-${g}`, btn, async () => {
		const r = await post('/api/cluster/failover', { group: g, reset: true });
		report(r, `Clearing group ${g}'s manual flag`, () => `Group ${g} follows its priorities again`);
		await refresh();
	});
}

function selectedImageName() {
	const sel = $('#image-select');
	const o = sel.selectedOptions[0];
	return o && o.value ? o.value.split('/').pop() : '';
}

async function plan(btn) {
	const opts = upgradeOptions();
	if (!opts.image_path) { showMessage('bad', 'Choose an image first', ''); return; }
	await busy('plan', btn, async () => {
		const r = await post('/api/cluster/upgrade/plan', opts);
		if (!r) return;
		if (r.body && (r.body.checks || r.ok)) {
			st.plan = { status: r.status, body: r.body, name: selectedImageName() };
			if (!r.ok && r.status !== 409) report(r, 'Pre-check plan');
		} else {
			st.plan = null;
			report(r, 'Pre-check plan');
		}
	});
}

async function start(btn) {
	const opts = upgradeOptions();
	if (!opts.image_path) { showMessage('bad', 'Choose an image first', ''); return; }
	const c = st.cluster;
	const ok = await confirmAction('Start the upgrade?',
		`Every node of ${c ? c.cluster || 'the cluster' : 'the cluster'} moves to ${selectedImageName()}, one at a time${opts.disruptive ? ' — all at once, with an outage (disruptive)' : ', in service'}.`,
		'Start upgrade', false);
	if (!ok) return;
	await busy('start', btn, async () => {
		const r = await post('/api/cluster/upgrade', opts);
		if (r && !r.ok && r.body && r.body.checks) st.plan = { status: r.status, body: r.body, name: selectedImageName() };
		report(r, 'Upgrade start', (b) => b.message || 'Upgrade started');
		await refresh();
	});
}

async function upgradeWrite(btn, key, path, title, text, okLabel, doneText) {
	if (!(await confirmAction(title, text, okLabel, key !== 'finalize'))) return;
	await busy(key, btn, async () => {
		const r = await post(path, {});
		report(r, okLabel, (b) => b.message || doneText);
		await refresh();
	});
}

// ---------------------------------------------------------------- routing

function route() {
	const m = /^#\/([a-z]+)/.exec(location.hash);
	const page = m && PAGES.includes(m[1]) ? m[1] : 'overview';
	if (!m || m[1] !== page) history.replaceState(null, '', `#/${page}`);
	st.page = page;
	for (const s of document.querySelectorAll('[data-page]')) s.hidden = s.dataset.page !== page;
	for (const a of document.querySelectorAll('[data-nav]')) {
		a.classList.toggle('active', a.dataset.nav === page);
		if (a.dataset.nav === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
	}
	if (page === 'upgrade') st.imagesAt = 0;
	drawAll();
	refresh();
}

function init() {
	document.addEventListener('click', (e) => {
		const btn = e.target.closest('[data-action]');
		if (!btn || btn.disabled) return;
		e.preventDefault();
		onAction(btn);
	});
	$('#image-select').addEventListener('change', () => { st.plan = null; drawAll(); });
	window.addEventListener('hashchange', route);
	// The header's "no answer for N s" counts up between polls.
	setInterval(drawHeader, 1000);
	initEvents();
	route();
	pollLoop();
}

init();
