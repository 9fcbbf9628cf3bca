// The admin API as the page uses it: the bearer token (kept for this tab only), and how
// fresh the data is, for the live indicator.

const TOKEN_KEY = 'shadowtap-admin-token';

/** The token given in this tab, if any. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Keeps `value` as this tab's token (empty forgets it). */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Why a request failed: `status` 0 means the admin port could not be reached. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  const all = { ...extra };
  const given = token();
  if (given) all.Authorization = `Bearer ${given}`;
  return all;
}

const listeners = new Set();
/** The state of the connection: last success, last failure. */
export const link = { lastOk: 0, failure: null };

/** Calls `listener(link)` whenever a request succeeds or fails. */
export function onLink(listener) {
  listeners.add(listener);
}

function report(failure) {
  if (failure) link.failure = failure;
  else {
    link.lastOk = Date.now();
    link.failure = null;
  }
  for (const listener of listeners) listener(link);
}

async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (error) {
    const failure = new ApiError(0, `the admin port cannot be reached (${error.message})`);
    report(failure);
    throw failure;
  }
  const text = await response.text();
  if (!response.ok) {
    let message = text.trim();
    try {
      const parsed = JSON.parse(text);
      if (Array.isArray(parsed.errors)) message = parsed.errors.join('; ');
    } catch (_) { /* plain text */ }
    const failure = new ApiError(response.status, message || response.statusText);
    // A refused change is the answer to a click, not a broken link.
    if (method === 'GET' && response.status !== 404) report(failure);
    throw failure;
  }
  if (method === 'GET') report(null);
  return text ? JSON.parse(text) : null;
}

/** GET an API path as JSON. */
export function get(path) {
  return call('GET', path);
}

/** PUT a JSON body. */
export function put(path, body) {
  return call('PUT', path, body);
}

/** Pins `field` of route `routeName` as `pin` (`noise`, `signal`, `none`). */
export function pin(routeName, field, pinAs) {
  return put('/api/v1/noise', { route: routeName, field, pin: pinAs });
}
