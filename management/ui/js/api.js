// The management HTTP API, as the UI uses it: RabbitMQ's paths under api/, JSON bodies and HTTP
// basic auth with the credentials the user logged in with (kept in sessionStorage, so they last as
// long as the tab).

const KEY = 'warren.credentials';
const BASE = new URL('api/', document.baseURI);

// ApiError is a failed call: the HTTP status and RabbitMQ's {"error", "reason"} body.
export class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason || error || `HTTP ${status}`);
    this.status = status;
    this.error = error || '';
    this.reason = reason || '';
  }
}

// describe turns any error from a call into the sentence the UI shows.
export function describe(err) {
  if (err instanceof ApiError) {
    const what = err.reason || err.error || 'request failed';
    const code = err.status ? `${err.status}${err.error ? ' ' + err.error : ''}: ` : '';
    return code + what;
  }
  return String(err && err.message ? err.message : err);
}

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return s && typeof s.user === 'string' && typeof s.auth === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

// basic encodes user:password as UTF-8 and then base64, as the Authorization header wants it.
function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// login checks the credentials with GET /api/whoami and keeps them when they work.
export async function login(user, password) {
  const auth = basic(user, password);
  const me = await send('GET', 'whoami', undefined, { auth, quiet: true });
  sessionStorage.setItem(KEY, JSON.stringify({ user: me && me.name ? me.name : user, auth, tags: me ? me.tags : [] }));
  return me;
}

let unauthorized = () => {};

// onUnauthorized sets what happens when the stored credentials stop working.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// path joins URL path segments, each percent-encoded: vhost "/" becomes %2F, and a name with
// spaces, '#', '?' or '/' stays one segment.
export function path(...segments) {
  return segments.map(s => encodeURIComponent(String(s))).join('/');
}

// exchangeSegment names an exchange in a URL: the default exchange ("") is amq.default there.
export function exchangeSegment(name) {
  return name === '' ? 'amq.default' : name;
}

async function send(method, rel, body, opts = {}) {
  const auth = opts.auth ?? session()?.auth;
  const headers = { Accept: 'application/json' };
  if (auth) headers.Authorization = 'Basic ' + auth;
  if (opts.headers) Object.assign(headers, opts.headers);
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    // credentials 'omit': the Authorization header is the only credential sent, and a 401 does not
    // make the browser pop up its own login dialog (the Fetch standard prompts only when
    // credentials are included).
    res = await fetch(new URL(rel, BASE), { method, headers, body: payload, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'network_error', `cannot reach the server (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && typeof data === 'object' && !Array.isArray(data)
      ? new ApiError(res.status, String(data.error ?? ''), String(data.reason ?? ''))
      : new ApiError(res.status, res.statusText, text.slice(0, 300));
    if (res.status === 401 && !opts.quiet) await checkSession();
    throw err;
  }
  return data;
}

// checkSession runs after a 401: RabbitMQ answers 401 both for bad credentials and for a user who
// may not do this one thing, so ask whoami which it is, and only drop the session for the first.
async function checkSession() {
  const auth = session()?.auth;
  if (!auth) {
    unauthorized();
    return;
  }
  try {
    await send('GET', 'whoami', undefined, { auth, quiet: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      logout();
      unauthorized();
    }
  }
}

export const api = {
  get: (rel) => send('GET', rel),
  put: (rel, body) => send('PUT', rel, body ?? {}),
  post: (rel, body) => send('POST', rel, body ?? {}),
  del: (rel, headers) => send('DELETE', rel, undefined, { headers }),
};
