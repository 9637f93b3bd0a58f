// The web page for runs: pipelines with their last status, a pipeline's runs, one run
// with its steps and live log, the cluster's runners. Views are picked by the URL's hash
// (#/, #/pipelines/G/N, #/runs/G/N/ID, #/runners); everything comes from the API's own
// endpoints, with the token the visitor gave (api.js).

import { ApiError, get, post, seg, setToken, token, withQuery } from './api.js';
import { cell, duration, el, seconds, statusBadge, table, when } from './dom.js';
import { LogView } from './log_view.js';

const ROLES = ['read', 'operate', 'admin'];
const ACTIVE = new Set(['pending', 'initializing', 'initialized', 'running', 'paused']);
const REFRESH_MS = 3000;
const PAGE = 50;

const view = document.getElementById('view');
const notice = document.getElementById('notice');
const who = document.getElementById('who');
const tokenForm = document.getElementById('token-form');
const tokenInput = document.getElementById('token-input');

let caller = null; // {name, role} from GET /whoami
let current = null; // the shown view's clean-up (timers, log stream)

const may = (role) => caller !== null && ROLES.indexOf(caller.role) >= ROLES.indexOf(role);

function say(message, kind = 'error') {
  notice.textContent = message;
  notice.className = `notice notice-${kind}`;
  notice.hidden = !message;
}

function showTokenForm(show) {
  tokenForm.hidden = !show;
  if (show) tokenInput.focus();
}

async function whoAmI() {
  try {
    caller = (await get('/whoami')).message;
    who.textContent = `${caller.name} (${caller.role})`;
    who.dataset.role = caller.role;
    showTokenForm(false);
    return true;
  } catch (err) {
    caller = null;
    who.textContent = '';
    delete who.dataset.role;
    if (err instanceof ApiError && err.status === 401) {
      say(token() ? `The token was refused: ${err.message}` : 'This API needs a token.', 'info');
      showTokenForm(true);
      return false;
    }
    throw err;
  }
}

// A token refused after the page took it (revoked, expired): ask for one again.
function refused(err) {
  if (!(err instanceof ApiError && err.status === 401)) return false;
  caller = null;
  show();
  return true;
}

// Runs `load` now and every REFRESH_MS until the view is left; errors go to the notice.
function every(load) {
  let timer = null;
  let left = false;
  const tick = async () => {
    try {
      await load();
    } catch (err) {
      if (refused(err)) return;
      say(err.message);
    }
    if (!left) timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
  return () => { left = true; clearTimeout(timer); };
}

async function act(what, path) {
  try {
    const { message } = await post(path);
    say(`${what}: ${message}`, 'ok');
    return message;
  } catch (err) {
    if (!refused(err)) say(`${what} refused: ${err.message}`);
    return null;
  }
}

function startButton(group, name) {
  if (!may('operate')) return null;
  return el('button', {
    type: 'button', class: 'start', 'data-action': 'start',
    onclick: async () => {
      const runId = await act(`Start ${group}/${name}`,
        `/pipelines/start/groups/${seg(group)}/names/${seg(name)}`);
      if (runId) location.hash = `#/runs/${seg(group)}/${seg(name)}/${seg(runId)}`;
    },
  }, 'Start');
}

// --- pipelines ---------------------------------------------------------------------

function pipelinesView() {
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'link', hidden: true }, 'More pipelines');
  view.replaceChildren(el('h1', { text: 'Pipelines' }),
    el('table', { class: 'list', id: 'pipelines' },
      el('thead', {}, el('tr', {}, ['Pipeline', 'Last run', 'When', ''].map(
        (h) => el('th', { scope: 'col', text: h })))),
      body),
    more);
  let cursor = null; // the page after those shown
  let shown = 1; // pages shown: refreshed together
  const row = (p) => {
    const last = p['last-run'];
    const link = `#/pipelines/${seg(p.group)}/${seg(p.name)}`;
    return el('tr', { dataset: { pipeline: `${p.group}/${p.name}` } },
      cell('Pipeline', el('a', { href: link, text: `${p.group}/${p.name}` }),
        p.paused ? el('span', { class: 'tag', text: 'paused' }) : null),
      cell('Last run', statusBadge(last && last.status)),
      cell('When', last ? when(last['created-at']) : ''),
      cell('', startButton(p.group, p.name)));
  };
  const load = async () => {
    const rows = [];
    let next = null;
    for (let i = 0; i < shown; i++) {
      const page = await get(withQuery('/pipelines', { 'last-run': true, limit: PAGE, cursor: next }));
      rows.push(...page.message.map(row));
      next = page.next;
      if (!next) break;
    }
    cursor = next;
    body.replaceChildren(...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No pipelines yet.' }))]));
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => { shown++; load().catch((e) => say(e.message)); });
  return every(load);
}

// --- the runs of a pipeline --------------------------------------------------------

function runsView(group, name) {
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'link', hidden: true }, 'More runs');
  view.replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: '#/', text: 'Pipelines' }), ' / '),
    el('div', { class: 'title' }, el('h1', { text: `${group}/${name}` }), startButton(group, name)),
    el('p', { class: 'muted', text: 'Runs, newest first.' }),
    el('table', { class: 'list', id: 'runs' },
      el('thead', {}, el('tr', {}, ['Run', 'Status', 'Created', 'Took'].map(
        (h) => el('th', { scope: 'col', text: h })))),
      body),
    more);
  let shown = 1;
  const row = (r) => el('tr', { dataset: { run: r['run-id'] } },
    cell('Run', el('a', {
      href: `#/runs/${seg(group)}/${seg(name)}/${seg(r['run-id'])}`, text: r['run-id'],
    })),
    cell('Status', statusBadge(r.status)),
    cell('Created', when(r['created-at'])),
    cell('Took', duration(r['started-at'], r['completed-at'])));
  const load = async () => {
    const rows = [];
    let next = null;
    for (let i = 0; i < shown; i++) {
      const page = await get(withQuery(
        `/pipelines/groups/${seg(group)}/names/${seg(name)}/runs`,
        { order: 'newest', limit: PAGE, cursor: next }));
      rows.push(...page.message.map(row));
      next = page.next;
      if (!next) break;
    }
    body.replaceChildren(...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No runs yet.' }))]));
    more.hidden = !next;
  };
  more.addEventListener('click', () => { shown++; load().catch((e) => say(e.message)); });
  return every(load);
}

// --- one run -----------------------------------------------------------------------

function runView(group, name, runId) {
  const runPath = `/pipelines/groups/${seg(group)}/names/${seg(name)}/runs/${seg(runId)}`;
  const facts = el('dl', { class: 'facts', id: 'run-facts' });
  const actions = el('div', { class: 'actions', id: 'run-actions' });
  const steps = el('div', { id: 'run-steps' });
  const log = new LogView(runId, { onEnd: () => load().catch((e) => say(e.message)) });
  view.replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: '#/', text: 'Pipelines' }), ' / ',
      el('a', { href: `#/pipelines/${seg(group)}/${seg(name)}`, text: `${group}/${name}` }), ' /'),
    el('div', { class: 'title' }, el('h1', { text: runId }), actions),
    facts, steps, log.node);
  const fact = (k, ...v) => [el('dt', { text: k }), el('dd', {}, ...v)];
  const button = (label, action, path) => el('button', {
    type: 'button', class: action, 'data-action': action,
    onclick: async () => { await act(`${label} ${runId}`, path); load().catch((e) => say(e.message)); },
  }, label);
  let status = null;
  const load = async () => {
    const run = (await get(runPath)).message;
    status = run.status;
    facts.replaceChildren(
      ...fact('Status', statusBadge(run.status)),
      ...fact('Attempt', String(run.attempt)),
      ...fact('Runner', run['runner-id'] ? `${run['runner-id']} (${run['runner-type']})` : run['runner-type']),
      ...fact('Created', when(run['created-at'])),
      ...fact('Started', when(run['started-at'])),
      ...fact('Completed', when(run['completed-at'])),
      ...fact('Took', duration(run['started-at'], run['completed-at'])),
      ...(run.reason ? fact('Reason', el('span', { id: 'run-reason', text: run.reason })) : []));
    steps.replaceChildren(run.steps.length ? table(['Step', 'Exit code', 'Took'],
      run.steps.map((s) => el('tr', {},
        cell('Step', String(s.index + 1)),
        cell('Exit code', el('span', { class: s['exit-code'] === 0 ? 'ok' : 'bad', text: String(s['exit-code']) })),
        cell('Took', seconds(s['duration-ms'] / 1000)))), 'steps') : '');
    const buttons = [];
    if (may('operate') && ACTIVE.has(run.status)) {
      buttons.push(button('Stop', 'stop', `/pipelines/stop/runs/${seg(runId)}`));
      if (run.status === 'running') {
        buttons.push(button('Pause', 'pause',
          `/pipelines/pause/groups/${seg(group)}/names/${seg(name)}/runs/${seg(runId)}`));
      } else if (run.status === 'paused') {
        buttons.push(button('Resume', 'resume',
          `/pipelines/unpause/groups/${seg(group)}/names/${seg(name)}/runs/${seg(runId)}`));
      }
    }
    actions.replaceChildren(...buttons);
  };
  log.follow();
  const stopRefresh = every(async () => {
    if (status === null || ACTIVE.has(status)) await load();
  });
  return () => { stopRefresh(); log.stop(); };
}

// --- runners -----------------------------------------------------------------------

function runnersView() {
  const body = el('tbody');
  view.replaceChildren(el('h1', { text: 'Runners' }),
    el('table', { class: 'list', id: 'runners' },
      el('thead', {}, el('tr', {}, ['Runner', 'Type', 'Host', 'Runs', 'CPU', 'Memory', 'Seen', 'Engine']
        .map((h) => el('th', { scope: 'col', text: h })))),
      body));
  const gib = (b) => (b ? `${(b / 2 ** 30).toFixed(1)} GiB` : '');
  const load = async () => {
    const nodes = Object.values((await get('/cluster/info')).message);
    body.replaceChildren(...(nodes.length ? nodes.map((n) => el('tr', { dataset: { runner: n['runner-id'] } },
      cell('Runner', n['runner-id']),
      cell('Type', n['runner-type']),
      cell('Host', n.hostname || ''),
      cell('Runs', `${n.runs.length} / ${n.capacity}`),
      cell('CPU', n['cpu/count'] ? `${n['cpu/count']} cores, load ${Number(n['cpu/load']).toFixed(2)}` : ''),
      cell('Memory', n['mem/total'] ? `${gib(n['mem/free'])} free of ${gib(n['mem/total'])}` : ''),
      cell('Seen', when(n['last-seen'])),
      cell('Engine', n['engine-healthy'] === false
        ? el('span', { class: 'bad', text: n['engine-problem'] || 'unhealthy' })
        : el('span', { class: 'ok', text: 'healthy' }))))
      : [el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No runner seen yet.' }))]));
  };
  return every(load);
}

// --- routing -----------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('here',
    a.dataset.nav === (parts[0] === 'runners' ? 'runners' : 'pipelines')));
  if (parts[0] === 'pipelines' && parts.length === 3) return runsView(parts[1], parts[2]);
  if (parts[0] === 'runs' && parts.length === 4) return runView(parts[1], parts[2], parts[3]);
  if (parts[0] === 'runners') return runnersView();
  return pipelinesView();
}

async function show() {
  if (current) current();
  current = null;
  say('');
  try {
    if (caller === null && !(await whoAmI())) {
      view.replaceChildren();
      return;
    }
    current = route();
  } catch (err) {
    say(err.message);
  }
}

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
  caller = null;
  show();
});
document.getElementById('token-forget').addEventListener('click', () => {
  setToken('');
  caller = null;
  show();
});
document.getElementById('token-button').addEventListener('click', () => {
  showTokenForm(tokenForm.hidden);
});
window.addEventListener('hashchange', show);
show();
