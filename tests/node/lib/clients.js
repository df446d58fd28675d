// Real Yjs clients (Y.Doc + y-websocket WebsocketProvider over the `ws` package)
// and the helpers the tests use to wait for and compare their documents.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as prng from 'lib0/prng'

export { Y, WebSocket, WebsocketProvider, prng }

// every WebsocketProvider adds a process 'exit' listener; tests open many at once
process.setMaxListeners(200)

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let roomCounter = 0
/** A fresh room name: [A-Za-z0-9._-] only, so it is its own file name on disk. */
export function freshRoom (prefix = 'room') {
  roomCounter++
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${roomCounter}`
}

/**
 * Polls `cond` (sync or async) until it returns a truthy value; returns that value.
 * Bounded: throws after `timeout` ms with `message` and, if given, `describe()`.
 */
export async function waitFor (cond, { timeout = 10000, interval = 20, message = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout
  let lastErr = null
  while (true) {
    try {
      const v = await cond()
      if (v) return v
      lastErr = null
    } catch (e) { lastErr = e }
    if (Date.now() >= deadline) {
      let detail = ''
      if (describe) { try { detail = '\n' + describe() } catch (e) { detail = `\n(describe failed: ${e.message})` } }
      if (lastErr) detail += `\nlast error: ${lastErr.stack || lastErr}`
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${detail}`)
    }
    await sleep(interval)
  }
}

/** One collaborating client: a Y.Doc bound to a room through y-websocket. */
export class Client {
  /**
   * protocols: y-websocket's `protocols` option; origin, headers: set on the upgrade
   * request through a WebSocketPolyfill (`ws` lets a client set them, a browser sets Origin
   * itself).
   */
  constructor (base, room, { doc, name, params, awareness, protocols, origin, headers } = {}) {
    this.name = name || `client-${Math.random().toString(36).slice(2, 7)}`
    this.base = base
    this.room = room
    this.doc = doc || new Y.Doc()
    /** every connection-close event: {code, reason, at} (null event = closed locally) */
    this.closes = []
    this.errors = []
    this.statuses = []
    const wsOptions = {}
    if (origin) wsOptions.origin = origin
    if (headers) wsOptions.headers = headers
    this.provider = new WebsocketProvider(base, room, this.doc, {
      WebSocketPolyfill: Object.keys(wsOptions).length === 0
        ? WebSocket
        : class extends WebSocket { constructor (url, protos) { super(url, protos, wsOptions) } },
      disableBc: true,
      params,
      protocols,
      awareness,
      // fast retries in tests (y-websocket's default is 2500 ms)
      maxBackoffTime: 1000
    })
    this.provider.on('connection-close', (ev) => {
      this.closes.push(ev ? { code: ev.code, reason: ev.reason, at: Date.now() } : { code: null, reason: 'local', at: Date.now() })
    })
    this.provider.on('connection-error', (ev) => { this.errors.push(ev && (ev.message || ev.type)) })
    this.provider.on('status', (ev) => { this.statuses.push(ev.status) })
    this.destroyed = false
  }

  get awareness () { return this.provider.awareness }
  get synced () { return this.provider.synced }
  get url () { return this.provider.url }
  text (name = 'text') { return this.doc.getText(name) }
  map (name = 'map') { return this.doc.getMap(name) }
  array (name = 'array') { return this.doc.getArray(name) }
  xml (name = 'prosemirror') { return this.doc.getXmlFragment(name) }

  describe () {
    // a token in the URL is a secret: not printed
    return `${this.name}: url=${this.url.replace(/token=[^&]+/, 'token=...')} synced=${this.synced} wsconnected=${this.provider.wsconnected} ` +
      `statuses=${JSON.stringify(this.statuses.slice(-6))} closes=${JSON.stringify(this.closes.slice(-4))} errors=${JSON.stringify(this.errors.slice(-3))}`
  }

  async waitSynced (timeout = 10000) {
    await waitFor(() => this.provider.synced, { timeout, message: `${this.name} to sync`, describe: () => this.describe() })
    return this
  }

  /** closes its connection but keeps the doc (offline editing) */
  disconnect () { this.provider.disconnect() }
  /** reconnects after disconnect() */
  connect () { this.provider.connect() }

  /** clean shutdown: y-websocket sends its awareness removal and a close frame */
  async destroy () {
    if (this.destroyed) return
    this.destroyed = true
    const ws = this.provider.ws
    this.provider.destroy()
    this.awareness.destroy()
    this.doc.destroy()
    if (ws) {
      await waitFor(() => ws.readyState === WebSocket.CLOSED, { timeout: 3000, message: `${this.name} socket to close` })
        .catch(() => { try { ws.terminate() } catch {} })
    }
  }

  /**
   * Abrupt cut: destroys the TCP socket under the WebSocket — no close frame,
   * no awareness removal from this client — and stops the provider reconnecting.
   * @param {{ rst?: boolean }} [o] rst: send a TCP RST instead of a FIN
   */
  async cut ({ rst = false } = {}) {
    const ws = this.provider.ws
    if (!ws || !ws._socket) throw new Error(`${this.name}: no open socket to cut`)
    this.provider.shouldConnect = false
    // no local awareness removal may reach the server: detach the broadcaster
    this.awareness.off('update', this.provider._awarenessUpdateHandler)
    if (rst && typeof ws._socket.resetAndDestroy === 'function') ws._socket.resetAndDestroy()
    else ws._socket.destroy()
    await waitFor(() => this.provider.ws === null, { timeout: 5000, message: `${this.name} to notice the cut` })
    this.destroyed = true
    this.provider.destroy()
    this.awareness.destroy()
    this.doc.destroy()
  }
}

/**
 * Connects a client and (by default) waits until it is synced.
 * @param {string} base e.g. server.wsBase
 * @param {string} room
 */
export async function connectClient (base, room, { waitSynced = true, timeout = 10000, ...opts } = {}) {
  const c = new Client(base, room, opts)
  if (waitSynced) {
    try { await c.waitSynced(timeout) } catch (e) { await c.destroy(); throw e }
  }
  return c
}

export async function connectClients (base, room, n, opts = {}) {
  const out = []
  try {
    for (let i = 0; i < n; i++) out.push(await connectClient(base, room, { ...opts, name: `${opts.namePrefix || 'c'}${i}` }))
  } catch (e) {
    await destroyAll(out)
    throw e
  }
  return out
}

export async function destroyAll (clients) {
  await Promise.all(clients.filter(Boolean).map((c) => c.destroy().catch(() => {})))
}

// ---------------------------------------------------------------------------
// Comparing documents

/** JSON.stringify with sorted object keys (stable across docs) */
export function stable (v) {
  return JSON.stringify(v, (_k, x) => {
    if (x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array)) {
      return Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
    }
    if (x instanceof Uint8Array) return Array.from(x)
    return x
  })
}

/** A structural view of an XML type tree: names, attributes, children, formatted text deltas. */
export function xmlTree (node) {
  if (node instanceof Y.XmlText) return { text: node.toDelta() }
  if (node instanceof Y.XmlElement) {
    return { name: node.nodeName, attrs: node.getAttributes(), children: node.toArray().map(xmlTree) }
  }
  if (node instanceof Y.XmlFragment) return { fragment: node.toArray().map(xmlTree) }
  if (node instanceof Y.XmlHook) return { hook: node.hookName }
  return { other: String(node) }
}

/**
 * The default roots compared by the tests. kind: text | map | array | xml
 * @typedef {Record<string, 'text'|'map'|'array'|'xml'>} Roots
 */
export const DEFAULT_ROOTS = { text: 'text', map: 'map', array: 'array' }

/** toJSON() of every named root plus a richer view (text deltas with formatting, XML trees). */
export function docView (doc, roots = DEFAULT_ROOTS) {
  const json = {}
  const rich = {}
  for (const [name, kind] of Object.entries(roots)) {
    let t
    switch (kind) {
      case 'text': t = doc.getText(name); rich[name] = t.toDelta(); break
      case 'map': t = doc.getMap(name); break
      case 'array': t = doc.getArray(name); break
      case 'xml': t = doc.getXmlFragment(name); rich[name] = xmlTree(t); break
      default: throw new Error(`unknown root kind ${kind}`)
    }
    json[name] = t.toJSON()
  }
  return { json, rich }
}

const hex = (u8) => Buffer.from(u8).toString('hex')

/** Compares two docs; returns null if equal, else a human-readable difference. */
export function docDiff (a, b, roots = DEFAULT_ROOTS) {
  const va = docView(a, roots)
  const vb = docView(b, roots)
  const ja = stable(va.json); const jb = stable(vb.json)
  if (ja !== jb) return `toJSON differs:\n  A=${ja.slice(0, 800)}\n  B=${jb.slice(0, 800)}`
  const ra = stable(va.rich); const rb = stable(vb.rich)
  if (ra !== rb) return `formatted content differs:\n  A=${ra.slice(0, 800)}\n  B=${rb.slice(0, 800)}`
  const sa = hex(Y.encodeStateVector(a)); const sb = hex(Y.encodeStateVector(b))
  if (sa !== sb) return `state vectors differ:\n  A=${svString(a)}\n  B=${svString(b)}`
  if (!Y.equalSnapshots(Y.snapshot(a), Y.snapshot(b))) return 'delete sets differ (Y.snapshot not equal)'
  return null
}

export function svString (doc) {
  const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
  return stable(Object.fromEntries([...sv.entries()].sort((x, y) => x[0] - y[0])))
}

/** Throws unless every client's doc equals the first one's. */
export function assertConverged (clients, roots = DEFAULT_ROOTS) {
  const docs = clients.map((c) => (c instanceof Y.Doc ? c : c.doc))
  for (let i = 1; i < docs.length; i++) {
    const d = docDiff(docs[0], docs[i], roots)
    if (d) {
      const names = clients.map((c, j) => c.name || `doc${j}`)
      throw new Error(`${names[0]} and ${names[i]} differ: ${d}`)
    }
  }
}

/** Waits (bounded) until all clients' docs are equal. */
export async function waitConverged (clients, { roots = DEFAULT_ROOTS, timeout = 15000, message = 'documents to converge' } = {}) {
  try {
    await waitFor(() => { assertConverged(clients, roots); return true }, { timeout, interval: 50, message })
  } catch (e) {
    let detail = ''
    try { assertConverged(clients, roots) } catch (d) { detail = d.message }
    const states = clients.filter((c) => c instanceof Client).map((c) => c.describe()).join('\n  ')
    throw new Error(`${e.message.split('\n')[0]}\n${detail}\n  ${states}`)
  }
}
