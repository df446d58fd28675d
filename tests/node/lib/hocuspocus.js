// Hocuspocus clients for the end-to-end tests (issue 16): the unmodified
// `@hocuspocus/provider` (4.8.0, and 3.4.4 through the `hocuspocus-provider-v3` alias) over
// the `ws` package, hand-made Hocuspocus frames over a raw socket, and the reference server
// (`@hocuspocus/server`, a devDependency) that the tests' own logic can be checked against.
//
// Protocol (every message): varString(documentName) varUint(type) payload
//   0 Sync      varUint(0 step1 | 1 step2 | 2 update) varUint8Array
//   1 Awareness varUint8Array(awareness update)
//   2 Auth      varUint(0 token | 1 permission denied | 2 authenticated) varString [varString version (4.x token)]
//   3 QueryAwareness
//   5 Stateless varString
//   7 Close     [varString reason] (server to provider)
//   8 SyncStatus varInt(1 applied | 0 not)
// and, per connection (no document name): [0x09] Ping, [0x0A] Pong.
//
// Every wait here is bounded in time.

import * as HP4 from '@hocuspocus/provider'
import * as HP3 from 'hocuspocus-provider-v3'
import { Awareness } from 'y-protocols/awareness'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { Y, WebSocket, waitFor, docDiff } from './clients.js'
import { decodeAwarenessPayload } from './raw.js'

export { HP4, HP3 }

/** the provider majors under test: WIREDB_HP_MAJORS=4 (or 3, or 4,3; default both) */
export const MAJORS = (process.env.WIREDB_HP_MAJORS || '4,3').split(',').map((s) => Number(s.trim())).filter(Boolean)

export const HP_SYNC = 0
export const HP_AWARENESS = 1
export const HP_AUTH = 2
export const HP_QUERY_AWARENESS = 3
export const HP_STATELESS = 5
export const HP_CLOSE = 7
export const HP_SYNC_STATUS = 8
export const HP_PING = 9
export const HP_PONG = 10

const lib = (major) => {
  if (major === 4) return HP4
  if (major === 3) return HP3
  throw new Error(`no @hocuspocus/provider of major ${major} here`)
}

/** the Hocuspocus base URL of a TestServer: the route's base with the trailing slash (`/rooms/*` does not match `/rooms`) */
export const hpUrl = (srv, query = '') => `ws://127.0.0.1:${srv.port}/rooms/${query}`

/**
 * Fast reconnects for the tests (the provider waits 1 s, doubling up to 30 s, by default);
 * messageReconnectTimeout is left at its 30 s default: the keep-alive test relies on it.
 */
const RETRY = { delay: 100, minDelay: 100, maxDelay: 1000, factor: 1.5, jitter: false }

/**
 * A shared HocuspocusProviderWebsocket (one socket for several documents), with every
 * raw frame it received recorded (`frames`: {at, data: Uint8Array}) and its events.
 */
export function hpSocket (url, { major = 4, autoConnect = true, ...extra } = {}) {
  const { HocuspocusProviderWebsocket } = lib(major)
  const socket = new HocuspocusProviderWebsocket({
    url,
    preserveTrailingSlash: true,
    WebSocketPolyfill: WebSocket,
    autoConnect,
    ...RETRY,
    ...extra
  })
  instrumentSocket(socket)
  return socket
}

function instrumentSocket (socket) {
  if (socket._wiredbTest) return socket._wiredbTest
  const rec = { frames: [], statuses: [], closes: [], disconnects: [], opens: 0, pings: 0 }
  socket._wiredbTest = rec
  socket.on('message', (ev) => {
    const data = new Uint8Array(ev.data)
    rec.frames.push({ at: Date.now(), data })
    if (data.length === 1 && data[0] === HP_PING) rec.pings++
  })
  socket.on('status', (e) => rec.statuses.push(e.status))
  socket.on('close', (e) => rec.closes.push({ code: e?.event?.code, reason: e?.event?.reason, at: Date.now() }))
  socket.on('disconnect', (e) => rec.disconnects.push({ code: e?.event?.code, reason: e?.event?.reason, at: Date.now() }))
  socket.on('open', () => { rec.opens++ })
  return rec
}

/** document names of the frames a socket received since index `from` (Ping/Pong excluded) */
export function frameDocs (socket, from = 0) {
  return socket._wiredbTest.frames.slice(from).filter((f) => f.data.length > 1).map((f) => decodeHp(f.data).doc)
}

let hpCounter = 0

/**
 * One Hocuspocus provider: a Y.Doc bound to document `name` through @hocuspocus/provider.
 * Records what it saw: events (every event, in order), statuses, closes, disconnects,
 * authenticated scopes, authenticationFailed reasons, stateless payloads, unsyncedChanges.
 */
export class HpClient {
  /**
   * @param {string} url Hocuspocus URL (e.g. hpUrl(srv)); ignored when `socket` is given
   * @param {string} name document name (= the room key)
   * @param {object} [o]
   * @param {3|4} [o.major] provider major (default 4)
   * @param {string|null|Function} [o.token]
   * @param {object} [o.socket] a shared HocuspocusProviderWebsocket (of the same major)
   * @param {Awareness|null} [o.awareness] null disables awareness
   * @param {boolean} [o.attach] with a shared socket: attach at once (default true)
   * @param {string} [o.label] a name for messages
   */
  constructor (url, name, { major = 4, token = null, socket, awareness, attach = true, label, doc, ...extra } = {}) {
    this.major = major
    this.name = name
    this.label = label || `hp${major}-${++hpCounter}`
    this.doc = doc || new Y.Doc()
    this.events = []
    this.statuses = []
    this.closes = []
    this.disconnects = []
    this.scopes = []
    this.authFailures = []
    this.stateless = []
    this.syncedEvents = 0
    this.destroyed = false
    const { HocuspocusProvider } = lib(major)
    const conf = {
      name,
      document: this.doc,
      token,
      onAuthenticated: ({ scope }) => { this.scopes.push(scope); this.ev('authenticated', scope) },
      onAuthenticationFailed: ({ reason }) => { this.authFailures.push(reason); this.ev('authenticationFailed', reason) },
      onSynced: ({ state }) => { this.syncedEvents++; this.ev('synced', state) },
      onStateless: ({ payload }) => { this.stateless.push(payload); this.ev('stateless', payload) },
      ...extra
    }
    if (awareness !== undefined) conf.awareness = awareness
    if (socket) {
      this.sharedSocket = true
      conf.websocketProvider = socket
    } else {
      Object.assign(conf, { url, preserveTrailingSlash: true, WebSocketPolyfill: WebSocket, ...RETRY, ...extra })
    }
    this.provider = new HocuspocusProvider(conf)
    // the provider sends every local update (and one step 2 per sync) to the server: count them
    this.localUpdates = 0
    this.doc.on('update', (_u, origin) => { if (origin !== this.provider) this.localUpdates++ })
    // status, close and disconnect through the provider's own events (forwarded from the
    // socket; a server Close of the document too): an onClose in the configuration of a
    // provider that makes its own socket is registered twice (on the socket, and again on
    // attach), which would record every close twice
    this.provider.on('status', ({ status }) => { this.statuses.push(status); this.ev('status', status) })
    this.provider.on('close', ({ event }) => { this.closes.push({ code: event?.code, reason: event?.reason, at: Date.now() }); this.ev('close', event?.code) })
    this.provider.on('disconnect', ({ event }) => { this.disconnects.push({ code: event?.code, reason: event?.reason, at: Date.now() }); this.ev('disconnect', event?.code) })
    this.socket = this.provider.configuration.websocketProvider
    this.rec = instrumentSocket(this.socket)
    // with a shared socket the provider attaches only when asked (both majors)
    if (socket && attach) this.provider.attach()
  }

  ev (type, value) { this.events.push({ type, value, at: Date.now() }) }

  /** SyncStatus frames the socket received for this provider's document: {applied, refused} */
  acks () {
    const name = this.provider.effectiveName ?? this.name // 3.x has no sessionAwareness
    let applied = 0; let refused = 0
    for (const f of this.rec.frames) {
      if (f.data.length <= 1) continue
      const m = decodeHp(f.data)
      if (m.type === 'sync-status' && m.doc === name) { if (m.applied) applied++; else refused++ }
    }
    return { applied, refused }
  }

  get awareness () { return this.provider.awareness }
  get synced () { return this.provider.isSynced }
  get authenticated () { return this.provider.isAuthenticated }
  get unsynced () { return this.provider.unsyncedChanges }
  get status () { return this.socket.status }
  /** the underlying `ws` WebSocket (null while disconnected) */
  get ws () { return this.socket.webSocket }
  text (n = 'text') { return this.doc.getText(n) }
  map (n = 'map') { return this.doc.getMap(n) }
  array (n = 'array') { return this.doc.getArray(n) }
  xml (n = 'prosemirror') { return this.doc.getXmlFragment(n) }

  describe () {
    return `${this.label} (v${this.major}, doc ${JSON.stringify(this.name)}): status=${this.status} synced=${this.synced} ` +
      `authenticated=${this.authenticated} scope=${this.provider.authorizedScope} unsynced=${this.unsynced} ` +
      `scopes=${JSON.stringify(this.scopes)} authFailures=${JSON.stringify(this.authFailures)} ` +
      `closes=${JSON.stringify(this.closes.slice(-4))} disconnects=${JSON.stringify(this.disconnects.slice(-4))} ` +
      `events=${JSON.stringify(this.events.slice(-10).map((e) => e.type + (e.value === undefined ? '' : ':' + e.value)))}`
  }

  async waitSynced (timeout = 10000) {
    await waitFor(() => this.synced, { timeout, message: `${this.label} to sync`, describe: () => this.describe() })
    return this
  }

  /** waits until every change this provider sent was acknowledged (SyncStatus): unsyncedChanges === 0 */
  async waitAcked (timeout = 10000) {
    await waitFor(() => this.synced && this.unsynced === 0, { timeout, message: `${this.label}'s unsyncedChanges to return to 0`, describe: () => this.describe() })
    return this
  }

  async waitAuthFailed (timeout = 10000) {
    return await waitFor(() => this.authFailures[0], { timeout, message: `${this.label} to get authenticationFailed`, describe: () => this.describe() })
  }

  /** detaches from its shared socket (the provider sends Close for its document) */
  detach () { this.provider.detach() }
  attach () { this.provider.attach() }

  /**
   * Destroys the provider (and its own socket unless shared; the socket is then closed,
   * bounded, terminated if it does not close).
   */
  async destroy () {
    if (this.destroyed) return
    this.destroyed = true
    const ws = this.sharedSocket ? null : this.socket.webSocket
    try { this.provider.destroy() } catch {}
    this.doc.destroy()
    if (ws) {
      await waitFor(() => ws.readyState === WebSocket.CLOSED, { timeout: 3000, message: `${this.label} socket to close` })
        .catch(() => { try { ws.terminate() } catch {} })
    }
  }
}

/** a provider, waiting (by default) until it is synced */
export async function connectHp (url, name, { waitSynced = true, timeout = 10000, ...o } = {}) {
  const c = new HpClient(url, name, o)
  if (waitSynced) {
    try { await c.waitSynced(timeout) } catch (e) { await c.destroy(); throw e }
  }
  return c
}

/** destroys providers and shared sockets (bounded) */
export async function destroyHp (items) {
  for (const x of items.filter(Boolean)) {
    try {
      if (x instanceof HpClient) await x.destroy()
      else if (typeof x.destroy === 'function') {
        const ws = x.webSocket
        x.destroy()
        if (ws) await waitFor(() => ws.readyState === WebSocket.CLOSED, { timeout: 3000, message: 'shared socket to close' }).catch(() => { try { ws.terminate() } catch {} })
      }
    } catch {}
  }
}

// ---------------------------------------------------------------------------
// Raw frames

const build = (f) => { const e = encoding.createEncoder(); f(e); return encoding.toUint8Array(e) }
const head = (e, doc, type) => { encoding.writeVarString(e, doc); encoding.writeVarUint(e, type) }

/** Auth token message; `version` is what 4.x appends (omit it for a 3.x message) */
export const hpAuth = (doc, token = '', version = '4.8.0') => build((e) => {
  head(e, doc, HP_AUTH); encoding.writeVarUint(e, 0); encoding.writeVarString(e, token)
  if (version != null) encoding.writeVarString(e, version)
})
export const hpSyncStep1 = (doc, sv) => build((e) => { head(e, doc, HP_SYNC); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, sv) })
export const hpSyncStep2 = (doc, update) => build((e) => { head(e, doc, HP_SYNC); encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, update) })
export const hpUpdate = (doc, update) => build((e) => { head(e, doc, HP_SYNC); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, update) })
export const hpAwareness = (doc, payload) => build((e) => { head(e, doc, HP_AWARENESS); encoding.writeVarUint8Array(e, payload) })
export const hpQueryAwareness = (doc) => build((e) => { head(e, doc, HP_QUERY_AWARENESS) })
export const hpStateless = (doc, s) => build((e) => { head(e, doc, HP_STATELESS); encoding.writeVarString(e, s) })
export const hpCloseDoc = (doc) => build((e) => { head(e, doc, HP_CLOSE) })
export const hpPong = () => Uint8Array.of(HP_PONG)

/** Decodes one server frame into {doc, type, ...}; never throws. */
export function decodeHp (u8) {
  if (u8.length === 1 && u8[0] === HP_PING) return { type: 'ping', raw: u8 }
  if (u8.length === 1 && u8[0] === HP_PONG) return { type: 'pong', raw: u8 }
  try {
    const d = decoding.createDecoder(u8)
    const doc = decoding.readVarString(d)
    const t = decoding.readVarUint(d)
    const m = { doc, raw: u8 }
    switch (t) {
      case HP_SYNC: {
        const s = decoding.readVarUint(d)
        return { ...m, type: 'sync', sub: ['step1', 'step2', 'update'][s] || `sync-${s}`, payload: decoding.readVarUint8Array(d) }
      }
      case HP_AWARENESS: return { ...m, type: 'awareness', payload: decodeAwarenessPayload(decoding.readVarUint8Array(d)) }
      case HP_AUTH: {
        const s = decoding.readVarUint(d)
        if (s === 0) return { ...m, type: 'auth', sub: 'token-request' }
        if (s === 1) return { ...m, type: 'auth', sub: 'permission-denied', reason: decoding.readVarString(d) }
        if (s === 2) return { ...m, type: 'auth', sub: 'authenticated', scope: decoding.readVarString(d) }
        return { ...m, type: 'auth', sub: `auth-${s}` }
      }
      case HP_QUERY_AWARENESS: return { ...m, type: 'query-awareness' }
      case HP_STATELESS: return { ...m, type: 'stateless', payload: decoding.readVarString(d) }
      case HP_CLOSE: return { ...m, type: 'close', reason: decoding.hasContent(d) ? decoding.readVarString(d) : undefined }
      case HP_SYNC_STATUS: return { ...m, type: 'sync-status', applied: decoding.readVarInt(d) === 1 }
      default: return { ...m, type: `unknown-${t}` }
    }
  } catch (e) {
    return { type: 'undecodable', error: e.message, raw: u8 }
  }
}

const brief = (m) => m.type + (m.sub ? '/' + m.sub : '') + (m.doc !== undefined ? `@${m.doc}` : '')

/** A raw Hocuspocus socket: sends any frame, records decoded server frames and the close. */
export class HpRaw {
  constructor (url, { answerPings = true } = {}) {
    this.url = url
    this.messages = []
    this.close = null
    this.error = null
    this.ws = new WebSocket(url)
    this.ws.binaryType = 'nodebuffer'
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of a WebSocket upgrade`)))
    })
    this.opened.catch(() => {})
    this.ws.on('error', (e) => { this.error = e })
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) { this.messages.push({ type: 'text', text: data.toString() }); return }
      const m = decodeHp(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      this.messages.push(m)
      if (m.type === 'ping' && answerPings) this.send(hpPong()).catch(() => {})
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.close = { code, reason: reason.toString(), at: Date.now() }
        resolve(this.close)
      })
    })
  }

  static async open (url, { timeout = 5000, ...o } = {}) {
    const c = new HpRaw(url, o)
    const t = new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`raw connection to ${url} did not open within ${timeout} ms`)), timeout))
    try { await Promise.race([c.opened, t]) } catch (e) { c.ws.terminate(); throw e }
    return c
  }

  send (data) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, { binary: typeof data !== 'string' }, (err) => (err ? reject(err) : resolve()))
    })
  }

  describe () { return `received ${JSON.stringify(this.messages.map(brief))} close=${JSON.stringify(this.close)}` }

  async waitMessage (pred, { timeout = 5000, message = 'a message' } = {}) {
    return await waitFor(() => this.messages.find(pred), { timeout, message, describe: () => this.describe() })
  }

  /**
   * Authenticates `doc` (Auth token message, then its sync step 1 with an empty state
   * vector, as a provider does); waits for the server's Authenticated and sync step 2.
   */
  async authenticate (doc, token = '', { version } = {}) {
    await this.send(hpAuth(doc, token, version))
    await this.send(hpSyncStep1(doc, Y.encodeStateVector(new Y.Doc())))
    const auth = await this.waitMessage((m) => m.doc === doc && m.type === 'auth' && m.sub !== 'token-request', { message: `the answer to ${doc}'s auth` })
    if (auth.sub !== 'authenticated') throw new Error(`auth of ${doc}: ${auth.sub} ${auth.reason || ''}`)
    const step2 = await this.waitMessage((m) => m.doc === doc && m.type === 'sync' && m.sub === 'step2', { message: `sync step 2 of ${doc}` })
    return { scope: auth.scope, step2 }
  }

  async waitClose (timeout = 5000) {
    const t = new Promise((resolve) => setTimeout(() => resolve(null), timeout))
    const r = await Promise.race([this.closed, t])
    if (!r) throw new Error(`server did not close the connection within ${timeout} ms (readyState ${this.ws.readyState}); ${this.describe()}`)
    return r
  }

  async end () {
    if (this.close) return
    try { this.ws.close(1000, 'test done') } catch {}
    const t = new Promise((resolve) => setTimeout(() => resolve(null), 2000))
    if (!await Promise.race([this.closed, t])) this.ws.terminate()
  }
}

// ---------------------------------------------------------------------------
// The reference server (@hocuspocus/server 4.x, a devDependency), in this process

/**
 * Starts @hocuspocus/server on a free 127.0.0.1 port (in memory, no persistence).
 * Only for checking the tests' logic where its behaviour is the contract's.
 * @returns {Promise<{ url: string, port: number, server: any, close: () => Promise<void> }>}
 */
export async function startReferenceServer (configuration = {}) {
  const { Server } = await import('@hocuspocus/server')
  const store = new Map()
  const server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    // the contract relays stateless messages to the document's other connections; the
    // reference server leaves that to a hook
    async onStateless ({ document, connection, payload }) {
      document.broadcastStateless(payload, (c) => c !== connection)
    },
    // kept in memory when a document unloads (a late joiner after everyone left)
    async onStoreDocument ({ documentName, document }) { store.set(documentName, Y.encodeStateAsUpdate(document)) },
    async onLoadDocument ({ documentName, document }) {
      if (store.has(documentName)) Y.applyUpdate(document, store.get(documentName))
      return document
    },
    ...configuration
  })
  await server.listen()
  const port = server.address.port
  return {
    kind: 'reference',
    port,
    server,
    url: `ws://127.0.0.1:${port}/`,
    close: async () => { await server.destroy() }
  }
}

/** awareness states of `observer` as text, for failure messages */
export const awarenessText = (observer) => JSON.stringify([...observer.awareness.getStates().entries()])

export { Awareness }

// ---------------------------------------------------------------------------
// Comparing documents of providers (HpClient) and y-websocket clients (Client)

const who = (c, i) => (c instanceof HpClient ? c.label : c.name || `doc${i}`)
const state = (c) => (typeof c.describe === 'function' ? c.describe() : '')

/** waits (bounded) until every client's doc equals the first one's (docDiff over `roots`) */
export async function waitSame (clients, { roots, timeout = 15000, message = 'documents to converge' } = {}) {
  const diff = () => {
    for (let i = 1; i < clients.length; i++) {
      const d = docDiff(clients[0].doc || clients[0], clients[i].doc || clients[i], roots)
      if (d) return `${who(clients[0], 0)} and ${who(clients[i], i)} differ: ${d}`
    }
    return null
  }
  await waitFor(() => diff() === null, {
    timeout,
    interval: 50,
    message,
    describe: () => `${diff()}\n  ${clients.map(state).filter(Boolean).join('\n  ')}`
  })
}

/** a copy of a doc (to compare with after its provider is gone) */
export function copyDoc (doc) {
  const d = new Y.Doc()
  Y.applyUpdate(d, Y.encodeStateAsUpdate(doc))
  return d
}
