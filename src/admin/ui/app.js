// The page's shell: the hash router, the polling loop that keeps every view live, the
// freshness indicator, the token dialog and the keyboard shortcuts.
import { get, link, onLink, token, setToken } from './api.js';
import * as overview from './overview.js';
import * as route from './route.js';
import * as sample from './sample.js';
import * as noise from './noise.js';

/** How often the routes are read, and how often the heavier history. */
const POLL_MS = 2000;
const HISTORY_EVERY = 5;
/** Data older than this many polls is called stale. */
const STALE_POLLS = 3;

const main = document.getElementById('view');
const live = document.getElementById('live');
const toast = document.getElementById('toast');

const ctx = {
  routes: null,
  history: null,
  noise: null,
  access: null,
  canChange: false,
  notify,
  askToken,
  refresh: () => poll(true),
};

let current = null;
let currentName = '';
let polls = 0;

function notify(text, bad = false) {
  toast.textContent = text;
  toast.className = bad ? 'toast bad' : 'toast';
  toast.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { toast.hidden = true; }, 4000);
}

/** The view a hash names, with its parameters. */
function parse(hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const search = new URLSearchParams(query);
  if (parts[0] === 'route' && parts.length >= 2) {
    return { name: 'route', params: { route: parts[1], shadow: search.get('shadow'), field: search.get('field') } };
  }
  if (parts[0] === 'sample' && parts.length >= 4) {
    return { name: 'sample', params: { route: parts[1], shadow: parts[2], id: parts[3] } };
  }
  if (parts[0] === 'noise') return { name: 'noise', params: {} };
  return { name: 'overview', params: {} };
}

const VIEWS = { overview, route, sample, noise };

function show() {
  const { name, params } = parse(location.hash);
  currentName = name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current = VIEWS[name].render(main, ctx, params);
  document.title = `shadowtap · ${name}`;
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  poll(true);
}

async function loadAccess() {
  try {
    ctx.access = await get('/api/v1/access');
    ctx.canChange = !ctx.access.changes_need_token || ctx.access.token_accepted;
  } catch (_) {
    ctx.canChange = false;
  }
  const button = document.getElementById('token-button');
  button.textContent = ctx.access?.token_accepted ? 'Token ✓' : 'Token';
  document.body.classList.toggle('read-only', !ctx.canChange);
}

let polling = false;
/** Reads what the current view needs and updates it. */
async function poll(force = false) {
  if (polling) return;
  polling = true;
  try {
    const wantHistory = force || polls % HISTORY_EVERY === 0 || !ctx.history;
    const [routes, history, noiseFields] = await Promise.all([
      get('/api/v1/routes'),
      wantHistory && currentName !== 'sample' ? get('/api/v1/history') : Promise.resolve(ctx.history),
      currentName === 'noise' ? get('/api/v1/noise') : Promise.resolve(ctx.noise),
    ]);
    ctx.routes = routes;
    ctx.history = history;
    ctx.noise = noiseFields;
    polls += 1;
    if (current) current.update(ctx);
  } catch (error) {
    if (error.status === 401 && !token()) askToken();
  } finally {
    polling = false;
    indicate();
  }
}

/** The freshness indicator: live, stale, or unreachable. */
function indicate() {
  const age = link.lastOk ? Math.round((Date.now() - link.lastOk) / 1000) : null;
  let state = 'live';
  let text = age === null ? 'connecting…' : `live · updated ${age} s ago`;
  if (link.failure && link.failure.status === 0) {
    state = 'down';
    text = `unreachable · ${age === null ? 'no data yet' : `data from ${age} s ago`}`;
  } else if (link.failure && link.failure.status === 401) {
    state = 'down';
    text = 'refused: this admin port needs its token';
  } else if (age !== null && age * 1000 > POLL_MS * STALE_POLLS) {
    state = 'stale';
    text = `stale · last update ${age} s ago`;
  }
  live.textContent = text;
  live.dataset.state = state;
}

function askToken() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  input.value = token();
  if (!dialog.open) dialog.showModal();
  input.focus();
}

async function saveToken(value) {
  setToken(value);
  document.getElementById('token-dialog').close();
  await loadAccess();
  notify(ctx.access?.token_accepted ? 'token accepted: changes enabled' : value ? 'this token was not accepted' : 'token forgotten', Boolean(value) && !ctx.access?.token_accepted);
  poll(true);
}

document.getElementById('token-button').addEventListener('click', askToken);
document.getElementById('token-save').addEventListener('click', () => saveToken(document.getElementById('token-input').value));
document.getElementById('token-forget').addEventListener('click', () => saveToken(''));
document.getElementById('token-input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter') {
    // Otherwise the Enter goes on to the button focus returns to, and reopens the dialog.
    event.preventDefault();
    saveToken(event.target.value);
  }
});

document.addEventListener('keydown', (event) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName) || event.target.isContentEditable;
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === '/' && current?.focusFilter) {
    event.preventDefault();
    current.focusFilter();
  } else if (event.key === 'o') {
    location.hash = '#/';
  } else if (event.key === 'n') {
    location.hash = '#/noise';
  } else if (event.key === '?') {
    document.getElementById('keys').open = true;
  }
});

onLink(indicate);
window.addEventListener('hashchange', show);
setInterval(() => { poll(); }, POLL_MS);
setInterval(indicate, 1000);
loadAccess().then(show);
setInterval(loadAccess, 15000);
