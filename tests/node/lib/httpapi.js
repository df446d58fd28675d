// Helpers of the HTTP API and webhook tests (issue 17): requests to a room's path on a
// `wiredb` route with `http_api` (Yjs updates in, documents out), Yjs updates built by a
// "backend" Y.Doc, and a webhook receiver: a node:http server on 127.0.0.1 that records
// every request and checks its X-WireDB-Signature (HMAC-SHA256 of the raw body) with
// node:crypto. Every wait is bounded.

import crypto from 'node:crypto'
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { Y, waitFor, docDiff, connectClient, destroyAll } from './clients.js'
import { httpBuffer } from './access.js'

export { httpBuffer }

// ---------------------------------------------------------------------------
// Requests to a room

/** http://127.0.0.1:PORT/<prefix>/<room>[?query] (query: an object; undefined values are left out) */
export function roomHttpUrl (srv, room, query = {}, prefix = 'rooms') {
  const u = new URL(`${srv.url}/${prefix}/${room}`)
  for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v))
  return u.toString()
}

const bearer = (token) => (token ? { Authorization: `Bearer ${token}` } : {})

/**
 * POST a Yjs update (or any body) to a room. Resolves to httpBuffer's answer plus `ms`
 * (time from the request to the whole answer).
 * @param {object} srv TestServer
 * @param {string} room
 * @param {Uint8Array|Buffer|string} body
 * @param {{ token?: string, query?: object, contentType?: string|null, headers?: object, prefix?: string, timeout?: number }} [o]
 */
export async function postUpdate (srv, room, body, { token, query, contentType = 'application/octet-stream', headers = {}, prefix, timeout } = {}) {
  const h = { ...bearer(token), ...headers }
  if (contentType !== null) h['Content-Type'] = contentType
  const t0 = performance.now()
  const res = await httpBuffer(roomHttpUrl(srv, room, query, prefix), { method: 'POST', headers: h, body: Buffer.from(body), timeout })
  res.ms = performance.now() - t0
  return res
}

/** GET a room as one Yjs update (Accept: application/octet-stream); query e.g. { sv } */
export function getUpdate (srv, room, { token, query, headers = {}, prefix } = {}) {
  return httpBuffer(roomHttpUrl(srv, room, query, prefix), { headers: { Accept: 'application/octet-stream', ...bearer(token), ...headers } })
}

/** GET a room as JSON (Accept: application/json) */
export function getJson (srv, room, { token, query, headers = {}, prefix } = {}) {
  return httpBuffer(roomHttpUrl(srv, room, query, prefix), { headers: { Accept: 'application/json', ...bearer(token), ...headers } })
}

/** GET ?awareness=1 */
export function getAwareness (srv, room, { token, prefix } = {}) {
  return getJson(srv, room, { token, prefix, query: { awareness: 1 } })
}

/** asserts nothing; returns a readable one-line summary of an answer (for messages) */
export const brief = (res) => `${res.status} ${JSON.stringify(res.headers['content-type'] || '')} ${res.text.length > 300 ? res.text.slice(0, 300) + '…' : res.text}`

// ---------------------------------------------------------------------------
// Yjs updates

/** a fresh Y.Doc with `update` applied; throws if something stays pending */
export function docFromUpdate (update) {
  const d = new Y.Doc()
  Y.applyUpdate(d, new Uint8Array(update))
  if (d.store.pendingStructs !== null || d.store.pendingDs !== null) {
    throw new Error(`the update leaves structs or deletes pending (missing dependencies): ${update.length} bytes`)
  }
  return d
}

export function copyDoc (doc) {
  const d = new Y.Doc()
  Y.applyUpdate(d, Y.encodeStateAsUpdate(doc))
  return d
}

/**
 * A backend's document: edits made on it are returned as the update since the last call
 * (what a backend POSTs). `load(update)` applies what it GETs from the server.
 */
export class Backend {
  constructor () {
    this.doc = new Y.Doc()
    this.sv = Y.encodeStateVector(this.doc)
  }

  /** runs fn(doc) in one transaction and returns the update it made (since the last edit/load) */
  edit (fn) {
    this.doc.transact(() => fn(this.doc))
    const u = Y.encodeStateAsUpdate(this.doc, this.sv)
    this.sv = Y.encodeStateVector(this.doc)
    return u
  }

  load (update) {
    Y.applyUpdate(this.doc, new Uint8Array(update))
    this.sv = Y.encodeStateVector(this.doc)
  }
}

/** a Map clientID -> clock from a base64 or base64url state vector (the API's `state_vector`) */
export function decodeSv (b64) {
  return Y.decodeStateVector(new Uint8Array(Buffer.from(b64, 'base64')))
}

/** a state vector (Uint8Array or Map) as a sorted plain object, for comparisons */
export function svObject (sv) {
  const m = sv instanceof Map ? sv : Y.decodeStateVector(sv)
  return Object.fromEntries([...m.entries()].filter(([, clock]) => clock > 0).sort((a, b) => a[0] - b[0]))
}

export const docSv = (doc) => svObject(Y.encodeStateVector(doc))

/** the document's roots as the API renders them: {name: {type, value}} */
export function renderedRoots (doc, roots) {
  const out = {}
  for (const [name, kind] of Object.entries(roots)) {
    const t = kind === 'text' ? doc.getText(name) : kind === 'map' ? doc.getMap(name) : doc.getArray(name)
    out[name] = { type: { text: 'Text', map: 'Map', array: 'Array' }[kind], value: t.toJSON() }
  }
  return out
}

export { docDiff }

// ---------------------------------------------------------------------------
// Numbers

export function quantile (xs, q) {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
export const median = (xs) => quantile(xs, 0.5)
export const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : String(x))

/**
 * Relay throughput of one room: a writer y-websocket client sends `n` updates (one
 * character each, one transaction each) in a burst; a second client receives them all.
 * Resolves to { n, ms, perSec } (time from the first edit to the last one at the reader).
 */
export async function measureEditRate (srv, room, n, { timeout = 30000 } = {}) {
  const clients = []
  try {
    const writer = await connectClient(srv.wsBase, room, { name: 'rate-writer' })
    clients.push(writer)
    const reader = await connectClient(srv.wsBase, room, { name: 'rate-reader' })
    clients.push(reader)
    const base = reader.text().length
    const t0 = performance.now()
    for (let i = 0; i < n; i++) writer.text().insert(writer.text().length, 'x')
    await waitFor(() => reader.text().length === base + n, {
      timeout,
      interval: 2,
      message: `the reader to receive ${n} updates`,
      describe: () => `reader has ${reader.text().length - base} of ${n}; ${reader.describe()}`
    })
    const ms = performance.now() - t0
    return { n, ms, perSec: n / (ms / 1000) }
  } finally {
    await destroyAll(clients)
  }
}

// ---------------------------------------------------------------------------
// Webhook receiver

/** `sha256=<hex>` of the raw body with `secret` */
export function signatureOf (secret, raw) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(raw).digest('hex')
}

/** true if `header` is exactly `sha256=<hex HMAC-SHA256 of raw with secret>` (constant-time compare) */
export function verifySignature (secret, raw, header) {
  if (typeof header !== 'string') return false
  const want = Buffer.from(signatureOf(secret, raw))
  const got = Buffer.from(header)
  return want.length === got.length && crypto.timingSafeEqual(want, got)
}

/**
 * A webhook receiver on 127.0.0.1:<free port>.
 *   mode 'ok'    answers 200 at once;
 *   mode 'hang'  reads the request and never answers (the connection stays open until close());
 *   a number     answers with that status;
 *   failFirst: n (mode 'ok') answers 500 to the first n requests of each room (a flaky receiver).
 * `requests` holds every request: { status (answered; null: never), at (performance.now()), wall (Date.now()), method, url, headers,
 * raw (Buffer), json, event, signatureOk (checked with `secret`) }.
 */
export class WebhookReceiver {
  constructor ({ secret, mode = 'ok', path = '/hook', failFirst = 0 } = {}) {
    this.secret = secret
    this.mode = mode
    this.failFirst = failFirst
    this.path = path
    this.requests = []
    this.sockets = new Set()
    this.server = http.createServer((req, res) => this._onRequest(req, res))
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)) })
    // a hanging receiver must not be cut by node's own timeouts while the test runs
    this.server.requestTimeout = 0
    this.server.headersTimeout = 0
    this.server.keepAliveTimeout = 5000
  }

  async start () {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => { this.server.off('error', reject); resolve() })
    })
    this.port = this.server.address().port
    return this
  }

  get url () { return `http://127.0.0.1:${this.port}${this.path}` }

  _onRequest (req, res) {
    const chunks = []
    req.on('data', (d) => chunks.push(d))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let json
      try { json = JSON.parse(raw.toString('utf8')) } catch { json = undefined }
      const room = json && json.room
      const seenBefore = this.requests.filter((r) => r.json && r.json.room === room).length
      const status = this.mode === 'hang' ? null : seenBefore < this.failFirst ? 500 : this.mode === 'ok' ? 200 : this.mode
      this.requests.push({
        status,
        at: performance.now(),
        wall: Date.now(),
        method: req.method,
        url: req.url,
        headers: req.headers,
        raw,
        json,
        event: json && json.event,
        signatureOk: this.secret !== undefined && verifySignature(this.secret, raw, req.headers['x-wiredb-signature'])
      })
      if (status === null) return // never answered
      res.writeHead(status, { 'Content-Type': 'text/plain' })
      res.end(status === 200 ? 'ok' : 'failing on purpose')
    })
  }

  /** requests whose JSON body matches { event, room } (either may be omitted) */
  events ({ event, room } = {}) {
    return this.requests.filter((r) => r.json && (event === undefined || r.json.event === event) && (room === undefined || r.json.room === room))
  }

  /** waits (bounded) until at least n requests match; returns them */
  async waitEvents (filter, n = 1, { timeout = 10000 } = {}) {
    return await waitFor(() => { const e = this.events(filter); return e.length >= n ? e : null }, {
      timeout,
      interval: 10,
      message: `${n} webhook request(s) matching ${JSON.stringify(filter)}`,
      describe: () => this.describe()
    })
  }

  describe () {
    return `receiver ${this.url} (${this.mode}) got ${this.requests.length} request(s): ` +
      JSON.stringify(this.requests.slice(-10).map((r) => ({ ...r.json, sig: r.signatureOk })))
  }

  /** closes the server and destroys every open connection (a hanging one too); bounded */
  async close () {
    for (const s of this.sockets) s.destroy()
    await Promise.race([
      new Promise((resolve) => this.server.close(() => resolve())),
      new Promise((resolve) => setTimeout(resolve, 2000))
    ])
  }
}

/** `webhook <url> { ... }` lines for wiredbDirectives */
export function webhookLines (url, { secret, debounce, events, timeout } = {}) {
  return [
    `webhook ${url} {`,
    ...(secret !== undefined ? [`\tsecret ${secret}`] : []),
    ...(debounce !== undefined ? [`\tdebounce ${debounce}`] : []),
    ...(events !== undefined ? [`\tevents ${[].concat(events).join(' ')}`] : []),
    ...(timeout !== undefined ? [`\ttimeout ${timeout}`] : []),
    '}'
  ]
}

export const hookSecret = () => crypto.randomBytes(24).toString('hex')
