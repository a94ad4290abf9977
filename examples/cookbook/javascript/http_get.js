// http_get: GETs meta.url (its origin granted in grants.http), with the
// token of grants.env (API_TOKEN) when the check has one, and reports the
// status and the start of the body; a refused or failed request is a
// `failed` outcome (the host adds the refused origin to its reason).
//
//   "meta": {"url": "http://127.0.0.1:8080/health"},
//   "grants": {"http": ["http://127.0.0.1:8080"], "env": ["API_TOKEN"]}

import { getEnvironment } from 'wasi:cli/environment@0.2.12';

// componentize-js 0.23's fetch() hands a redirect back as it is: follow
// Location here (the host checks every hop against grants.http).
async function get(url, headers, hops = 5) {
  const response = await fetch(url, { headers });
  const location = response.headers.get('location');
  if (response.status >= 300 && response.status < 400 && location && hops > 0) {
    return get(new URL(location, url).href, headers, hops - 1);
  }
  return response;
}

// `run` may be async: componentize-js runs the event loop until it settles.
export async function run(tick, check) {
  const { url } = JSON.parse(check.meta);
  const token = new Map(getEnvironment()).get('API_TOKEN'); // present only when granted
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  let response, text;
  try {
    response = await get(url, headers);
    text = await response.text();
  } catch (e) {
    // A refused origin, a refused connection, a body over maxHttpBytes: a TypeError.
    return { status: 'failed', details: JSON.stringify({ error: `GET ${url}: ${e.message}` }) };
  }
  const details = { status: response.status, tokenSent: Boolean(token), excerpt: text.slice(0, 200) };
  return { status: response.ok ? 'success' : 'failed', details: JSON.stringify(details) };
}
