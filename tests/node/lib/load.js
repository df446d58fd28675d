// Load-test helpers: the server's memory (VmRSS from /proc), its TCP sockets (ss),
// a lightweight y-websocket-compatible client (one Y.Doc + one raw `ws` socket, no
// WebsocketProvider: thousands of them fit in one Node process) and a "slow" client
// that does the handshake and then stops reading.
//
// Linux only (/proc, ss). Everything is bounded in time; nothing here kills processes.

import fs from 'node:fs'
import { execFile } from 'node:child_process'
import * as Y from 'yjs'
import WebSocket from 'ws'
import * as decoding from 'lib0/decoding'
import { msgSyncStep1, msgSyncStep2, msgUpdate, decodeMessage, MSG_SYNC, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, MSG_AWARENESS } from './raw.js'
import { sleep } from './clients.js'
import { httpRequest } from './server.js'

export const MiB = 1024 * 1024
export const fmtMiB = (bytes) => bytes == null ? 'n/a' : `${(bytes / MiB).toFixed(1)} MiB`

// ---------------------------------------------------------------------------
// Process memory and limits

/** VmRSS of a process in bytes (null if it is gone) */
export function readRss (pid) {
  let text
  try { text = fs.readFileSync(`/proc/${pid}/status`, 'utf8') } catch { return null }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text)
  return m ? Number(m[1]) * 1024 : null
}

/** soft limit of open files of a process (from /proc/<pid>/limits), or null */
export function openFilesLimit (pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/limits`, 'utf8')
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text)
    if (!m) return null
    return m[1] === 'unlimited' ? Infinity : Number(m[1])
  } catch { return null }
}

/** open sockets of a process (file descriptors that are sockets), or null */
export function openSockets (pid) {
  let n = 0
  let fds
  try { fds = fs.readdirSync(`/proc/${pid}/fd`) } catch { return null }
  for (const fd of fds) {
    try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++ } catch {}
  }
  return n
}

/** number of open file descriptors of a process, or null */
export function openFds (pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length } catch { return null }
}

/**
 * Samples a process's VmRSS every `intervalMs` until stop(). Marks (named points in
 * time) let a test report the RSS at a phase and the peak between two marks.
 */
export class RssSampler {
  constructor (pid, intervalMs = 100) {
    this.pid = pid
    this.intervalMs = intervalMs
    /** [{t, rss}] (t: ms since start) */
    this.samples = []
    this.marks = {}
    this.t0 = Date.now()
    this.timer = setInterval(() => this.sample(), intervalMs)
    this.timer.unref?.()
    this.sample()
  }

  sample () {
    const rss = readRss(this.pid)
    if (rss != null) this.samples.push({ t: Date.now() - this.t0, rss })
    return rss
  }

  /** takes a sample now and remembers it under `name`; returns the RSS in bytes */
  mark (name) {
    const rss = this.sample()
    this.marks[name] = { t: Date.now() - this.t0, rss }
    return rss
  }

  /** peak RSS over all samples (or between two marks) */
  peak (fromMark, toMark) {
    const from = fromMark ? this.marks[fromMark].t : -Infinity
    const to = toMark ? this.marks[toMark].t : Infinity
    let best = null
    for (const s of this.samples) {
      if (s.t >= from && s.t <= to && (best === null || s.rss > best.rss)) best = s
    }
    return best
  }

  stop () { clearInterval(this.timer); this.sample() }
}

/**
 * Lets Go's runtime settle before a memory reading: waits `ms`, then returns the
 * median of the RSS samples taken in the last `windowMs`.
 */
export async function settledRss (sampler, ms = 1500, windowMs = 500) {
  await sleep(ms)
  sampler.sample()
  const now = Date.now() - sampler.t0
  const rs = sampler.samples.filter((s) => s.t >= now - windowMs).map((s) => s.rss).sort((a, b) => a - b)
  return rs.length ? rs[Math.floor(rs.length / 2)] : sampler.sample()
}

/**
 * Go runtime memory of the server, from Caddy's admin endpoint (/debug/vars: expvar's
 * memstats). Needs startServer({ admin: true }). Returns byte figures, or null on failure.
 */
export async function goMemStats (srv, { gc = false } = {}) {
  if (!srv.adminUrl) return null
  try {
    // pprof's heap handler with gc=1 runs a garbage collection first: then HeapInuse is
    // (about) the live heap instead of "live + garbage not yet collected"
    if (gc) await httpRequest(`${srv.adminUrl}/debug/pprof/heap?gc=1`, { timeout: 10000 })
    const res = await httpRequest(`${srv.adminUrl}/debug/vars`, { timeout: 5000 })
    const m = JSON.parse(res.body).memstats
    return {
      heapInuse: m.HeapInuse, heapIdle: m.HeapIdle, heapReleased: m.HeapReleased, stackInuse: m.StackInuse,
      sys: m.Sys, numGC: m.NumGC, heapObjects: m.HeapObjects
    }
  } catch { return null }
}

/**
 * Caddy's Prometheus metrics (admin endpoint /metrics; needs startServer({ admin: true })):
 * Map of 'name{labels}' (as printed) -> value. Throws if the endpoint does not answer.
 */
export async function scrapeMetrics (srv, timeout = 5000) {
  if (!srv.adminUrl) throw new Error('scrapeMetrics: needs startServer({ admin: true })')
  const res = await httpRequest(`${srv.adminUrl}/metrics`, { timeout })
  if (res.status !== 200) throw new Error(`GET ${srv.adminUrl}/metrics answered ${res.status}`)
  const out = new Map()
  for (const line of res.body.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** one line: "heap in use X, stacks Y, ..." */
export function fmtGoMem (g) {
  if (!g) return 'n/a'
  return `heap in use ${fmtMiB(g.heapInuse)}, stacks ${fmtMiB(g.stackInuse)}, heap idle ${fmtMiB(g.heapIdle)} (released ${fmtMiB(g.heapReleased)}), Go sys ${fmtMiB(g.sys)}`
}

// ---------------------------------------------------------------------------
// TCP sockets, as the kernel sees them

function run (cmd, args, timeout = 5000) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

/**
 * TCP sockets with local port `port` on 127.0.0.1 (the server side of our connections):
 * [{state, recvQ, sendQ, local, peer, peerPort}]. Uses `ss -tan`.
 */
export async function serverSockets (port) {
  const out = await run('ss', ['-tanH', `sport = :${port}`])
  return out.split('\n').filter(Boolean).map((line) => {
    const [state, recvQ, sendQ, local, peer] = line.trim().split(/\s+/)
    return { state, recvQ: Number(recvQ), sendQ: Number(sendQ), local, peer, peerPort: Number(peer.split(':').pop()) }
  })
}

/**
 * Both ends of every TCP connection to the server on `port`, keyed by the client's port:
 * Map<clientPort, {server: {state, sendQ, recvQ}|null, client: {state, sendQ, recvQ}|null}>.
 * Two `ss` calls (the server side: sport = port; the client side: dport = port).
 */
export async function tcpSnapshot (port) {
  const parse = (out) => out.split('\n').filter(Boolean).map((line) => {
    const [state, recvQ, sendQ, local, peer] = line.trim().split(/\s+/)
    return { state, recvQ: Number(recvQ), sendQ: Number(sendQ), localPort: Number(local.split(':').pop()), peerPort: Number(peer.split(':').pop()) }
  })
  const srv = parse(await run('ss', ['-tanH', `sport = :${port}`]))
  const cli = parse(await run('ss', ['-tanH', `dport = :${port}`]))
  const map = new Map()
  const get = (k) => { if (!map.has(k)) map.set(k, { server: null, client: null }); return map.get(k) }
  for (const s of srv) if (s.state !== 'LISTEN') get(s.peerPort).server = s
  for (const c of cli) get(c.localPort).client = c
  return map
}

/** bytes on the wire of one server->client y-websocket sync update frame carrying `len` bytes */
export function updateFrameBytes (len) {
  let v = 1; for (let n = len; n >= 128; n = Math.floor(n / 128)) v++
  const payload = 2 + v + len // type 0, sub 2, varUint8Array
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10)
}

// ---------------------------------------------------------------------------
// Clients

const WS_OPTS = { perMessageDeflate: false, maxPayload: 256 * MiB }

/**
 * A y-websocket-compatible client without WebsocketProvider: one Y.Doc, one `ws` socket.
 * Speaks the protocol like y-websocket does: sends its step 1 on open, answers the
 * server's step 1 with a step 2, applies step 2 / update messages, and sends every local
 * doc update as a sync update message. No awareness of its own, no reconnects: a close is
 * recorded (the test decides whether it is a failure).
 */
export class LightClient {
  constructor (url, { name, doc } = {}) {
    this.url = url
    this.name = name || url
    this.doc = doc || new Y.Doc()
    this.synced = false // got the server's step 2
    this.whenSynced = new Promise((resolve) => { this._resolveSynced = resolve })
    this.gotServerStep1 = false
    this.close = null
    this.error = null
    this.received = { step1: 0, step2: 0, update: 0, awareness: 0, other: 0, bytes: 0 }
    this.sendErrors = 0
    this.ws = new WebSocket(url, WS_OPTS)
    this.ws.binaryType = 'nodebuffer'
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of a WebSocket upgrade`)))
    })
    this.opened.catch(() => {})
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.close = { code, reason: reason.toString(), at: Date.now() }
        resolve(this.close)
      })
    })
    this.ws.on('error', (e) => { this.error = e })
    this.ws.on('open', () => this._send(msgSyncStep1(Y.encodeStateVector(this.doc))))
    this.ws.on('message', (data) => this._onMessage(data))
    this._onUpdate = (update, origin) => { if (origin !== this) this._send(msgUpdate(update)) }
    this.doc.on('update', this._onUpdate)
  }

  _send (u8) {
    if (this.ws.readyState !== WebSocket.OPEN) { this.sendErrors++; return }
    this.ws.send(u8, { binary: true }, (err) => { if (err) this.sendErrors++ })
  }

  _onMessage (data) {
    const u8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    this.received.bytes += u8.length
    const d = decoding.createDecoder(u8)
    const type = decoding.readVarUint(d)
    if (type === MSG_SYNC) {
      const sub = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      if (sub === SYNC_STEP1) {
        this.received.step1++
        this.gotServerStep1 = true
        this._send(msgSyncStep2(Y.encodeStateAsUpdate(this.doc, payload)))
      } else if (sub === SYNC_STEP2) {
        this.received.step2++
        Y.applyUpdate(this.doc, payload, this)
        this.synced = true
        this._resolveSynced()
      } else if (sub === SYNC_UPDATE) {
        this.received.update++
        Y.applyUpdate(this.doc, payload, this)
      } else this.received.other++
    } else if (type === MSG_AWARENESS) this.received.awareness++
    else this.received.other++
  }

  /** bytes queued in `ws` but not yet handed to the kernel */
  get buffered () { return this.ws.bufferedAmount }

  describe () {
    return `${this.name}: readyState=${this.ws.readyState} synced=${this.synced} received=${JSON.stringify(this.received)} ` +
      `close=${JSON.stringify(this.close)} error=${this.error && this.error.message}`
  }

  /** closes from our side (bounded), then frees the doc */
  async end (timeout = 3000) {
    this.doc.off('update', this._onUpdate)
    if (!this.close) {
      try { this.ws.close(1000, 'done') } catch {}
      const r = await within(this.closed, timeout)
      if (!r) this.ws.terminate()
    }
    this.doc.destroy()
  }

  terminate () { try { this.ws.terminate() } catch {} this.doc.destroy() }
}

/**
 * A client that completes the y-websocket handshake (answers the server's step 1 with an
 * empty step 2) and then stops reading: the socket is paused, so TCP backpressure builds
 * up on the server; pings are not answered either (autoPong off, and unread anyway).
 * resume() lets it read again; everything it received and how it was closed is recorded.
 */
export class SlowClient {
  constructor (url) {
    this.url = url
    this.messages = 0
    this.bytes = 0
    this.types = {}
    this.pings = 0
    this.close = null
    this.error = null
    this.ws = new WebSocket(url, { ...WS_OPTS, autoPong: false })
    this.ws.binaryType = 'nodebuffer'
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('error', reject)
    })
    this.opened.catch(() => {})
    // a client speaks first (its step 1): the server greets it only then
    this.ws.once('open', () => this.ws.send(msgSyncStep1(new Uint8Array([0])), { binary: true }))
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.close = { code, reason: reason.toString(), at: Date.now() }
        resolve(this.close)
      })
    })
    this.ws.on('error', (e) => { this.error = e })
    this.ws.on('ping', () => { this.pings++ })
    this.handshakeDone = new Promise((resolve) => { this._hsResolve = resolve })
    this.ws.on('message', (data) => {
      this.messages++
      this.bytes += data.length
      const m = decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      const k = m.type + (m.sub ? '/' + m.sub : '')
      this.types[k] = (this.types[k] || 0) + 1
      if (m.type === 'sync' && m.sub === 'step1' && this._hsResolve) {
        // an empty document's state: "no structs, no deletes"
        this.ws.send(msgSyncStep2(Y.encodeStateAsUpdate(new Y.Doc())), { binary: true })
        this._hsResolve()
        this._hsResolve = null
      }
    })
  }

  /** local TCP port (to find this connection in `ss`) */
  get localPort () { return this.ws._socket ? this.ws._socket.localPort : undefined }

  /** stops reading from the socket */
  pause () { this.ws.pause() }
  /** reads again */
  resume () { this.ws.resume() }

  describe () {
    return `slow client: readyState=${this.ws.readyState} paused=${this.ws.isPaused} messages=${this.messages} bytes=${this.bytes} ` +
      `types=${JSON.stringify(this.types)} pings=${this.pings} close=${JSON.stringify(this.close)} error=${this.error && this.error.message}`
  }

  terminate () { try { this.ws.terminate() } catch {} }
}

/**
 * Resolves to what `promise` resolves to, or to `onTimeout` (default null) after `ms`;
 * the timer is cleared either way (no dangling timers keeping the process alive).
 */
export function within (promise, ms, onTimeout = null) {
  let timer
  const t = new Promise((resolve) => { timer = setTimeout(() => resolve(onTimeout), ms) })
  return Promise.race([promise, t]).finally(() => clearTimeout(timer))
}

/** like within(), but rejects with `message` on timeout */
export async function orThrow (promise, ms, message) {
  const NO = Symbol('timeout')
  const r = await within(promise, ms, NO)
  if (r === NO) throw new Error(typeof message === 'function' ? message() : message)
  return r
}

/** opens `n` items with `open(i)` in batches of `batch` (each batch awaited before the next) */
export async function inBatches (n, batch, open) {
  const out = []
  for (let i = 0; i < n; i += batch) {
    const part = []
    for (let j = i; j < Math.min(n, i + batch); j++) part.push(open(j))
    out.push(...await Promise.all(part))
  }
  return out
}

export { Y, WebSocket }
