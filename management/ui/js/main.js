// Entry point: login, hash routing (#/queues/%2F/name: each segment percent-encoded) and the
// refresh loop. Pages are modules with render(ctx); ctx.every() schedules a refresh that stops when
// the user leaves the page.

import { api, login, logout, onUnauthorized, session, describe } from './api.js';
import { h } from './dom.js';
import * as overview from './pages/overview.js';
import * as queues from './pages/queues.js';
import * as exchanges from './pages/exchanges.js';
import * as connections from './pages/connections.js';
import * as admin from './pages/admin.js';

const REFRESH_MS = 5000;

const routes = [
  { section: 'overview', match: [], page: overview.render },
  { section: 'queues', match: ['queues'], page: queues.renderList },
  { section: 'queues', match: ['queues', '*', '*'], page: queues.renderQueue },
  { section: 'exchanges', match: ['exchanges'], page: exchanges.renderList },
  { section: 'exchanges', match: ['exchanges', '*', '*'], page: exchanges.renderExchange },
  { section: 'connections', match: ['connections'], page: connections.renderConnections },
  { section: 'channels', match: ['channels'], page: connections.renderChannels },
  { section: 'vhosts', match: ['vhosts'], page: admin.renderVhosts },
  { section: 'users', match: ['users'], page: admin.renderUsers },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const loginBox = document.getElementById('login');
const loginForm = document.getElementById('login-form');
const loginStatus = document.getElementById('login-status');
const sessionBox = document.getElementById('session');
let current = null;

// parse splits the hash into decoded segments: "#/queues/%2F/a%20b" -> ["queues", "/", "a b"].
function parse(hash) {
  const raw = hash.replace(/^#\/?/, '');
  if (raw === '') return [];
  return raw.split('/').map(s => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
}

function find(segments) {
  for (const r of routes) {
    if (r.match.length !== segments.length) continue;
    if (r.match.every((m, i) => m === '*' || m === segments[i])) {
      return { route: r, params: segments.filter((_, i) => r.match[i] === '*') };
    }
  }
  return null;
}

function stop() {
  if (!current) return;
  current.alive = false;
  for (const id of current.timers) clearTimeout(id);
  current = null;
}

function show() {
  stop();
  if (!session()) {
    showLogin();
    return;
  }
  loginBox.hidden = true;
  nav.hidden = false;
  sessionBox.hidden = false;
  document.getElementById('session-user').textContent = session().user;
  // Like RabbitMQ's UI, the admin pages are for administrators (the API would refuse the rest anyway).
  const tags = Array.isArray(session().tags) ? session().tags : String(session().tags || '').split(',');
  const admin = tags.map(t => t.trim()).includes('administrator');
  for (const a of nav.querySelectorAll('a[data-admin]')) a.parentElement.hidden = !admin;
  main.hidden = false;
  if (!document.getElementById('footer').textContent) footer();

  const segments = parse(location.hash);
  const found = find(segments);
  for (const a of nav.querySelectorAll('a')) {
    if (found && a.dataset.section === found.route.section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = h('div', { className: 'view' });
  main.replaceChildren(view);
  if (!found) {
    view.append(h('h1', {}, 'Not found'), h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the overview.')));
    return;
  }
  const ctx = {
    alive: true,
    timers: new Set(), // pending refresh timeouts
    view,
    params: found.params,
    title(t) {
      document.title = `${t} · Warren`;
    },
    // every runs fn now and then every REFRESH_MS after each run finishes, while the page is open.
    // Runs are skipped while the tab is hidden.
    every(fn, ms = REFRESH_MS) {
      const tick = async () => {
        if (!ctx.alive) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (err) {
            console.warn('refresh failed', err);
          }
        }
        if (!ctx.alive) return;
        const id = setTimeout(() => {
          ctx.timers.delete(id);
          tick();
        }, ms);
        ctx.timers.add(id);
      };
      tick();
    },
    go(hash) {
      location.hash = hash;
    },
  };
  current = ctx;
  try {
    found.route.page(ctx);
  } catch (err) {
    view.append(h('p', { className: 'status error', role: 'alert' }, describe(err)));
  }
}

function showLogin(message) {
  stop();
  main.replaceChildren();
  main.hidden = true;
  nav.hidden = true;
  sessionBox.hidden = true;
  loginBox.hidden = false;
  document.title = 'Log in · Warren';
  loginStatus.className = message ? 'status error' : 'status';
  loginStatus.textContent = message || '';
  document.getElementById('login-username').focus();
}

loginForm.addEventListener('submit', async ev => {
  ev.preventDefault();
  const user = loginForm.elements.username.value;
  const password = loginForm.elements.password.value;
  const button = loginForm.querySelector('button');
  button.disabled = true;
  loginStatus.className = 'status';
  loginStatus.textContent = '';
  try {
    await login(user, password);
    loginForm.elements.password.value = '';
    show();
  } catch (err) {
    loginStatus.className = 'status error';
    loginStatus.textContent = err.status === 401 ? 'Login failed: wrong username or password, or no access to management.' : describe(err);
  } finally {
    button.disabled = false;
  }
});

document.getElementById('logout').addEventListener('click', () => {
  logout();
  showLogin();
});

onUnauthorized(() => showLogin('Your session has ended: log in again.'));
window.addEventListener('hashchange', () => {
  show();
  // Tell assistive technology the page changed: focus moves to the new page's content.
  if (!main.hidden) {
    window.scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
});

// Footer: what we are talking to.
async function footer() {
  if (!session()) return;
  try {
    const o = await api.get('overview');
    const parts = [o.product_name || 'Warren', o.product_version, o.node ? `node ${o.node}` : ''].filter(Boolean);
    document.getElementById('footer').textContent = parts.join(' · ');
  } catch {
    // The overview page shows errors; the footer stays quiet.
  }
}

show();
