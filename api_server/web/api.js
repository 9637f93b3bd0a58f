// The API, as the page calls it: same origin, the visitor's token in the Authorization
// header (never in a URL, never in a cookie), Bob's {"message": ...} envelope unwrapped.

const TOKEN_KEY = 'bob.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.message !== undefined) {
      message = typeof body.message === 'string' ? body.message : JSON.stringify(body.message);
    }
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(res.status, message);
}

// A request whose answer is read as it streams (a followed log); throws ApiError.
export async function open(path, signal) {
  const res = await fetch(path, {
    headers: headers(), signal, cache: 'no-store', credentials: 'omit',
  });
  if (!res.ok) throw await failure(res);
  return res;
}

// GET or POST (no body: the API's starts and stops need none); the message and the next
// page's cursor (X-Next-Cursor) when there is one.
export async function call(method, path, signal) {
  const res = await fetch(path, {
    method, headers: headers(), signal, cache: 'no-store', credentials: 'omit',
  });
  if (!res.ok) throw await failure(res);
  const body = await res.json();
  return { message: body.message, next: res.headers.get('X-Next-Cursor') };
}

export const get = (path, signal) => call('GET', path, signal);
export const post = (path) => call('POST', path);

// A path segment, encoded: names and run ids come from the API, never trusted as paths.
export const seg = (s) => encodeURIComponent(s);

export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
