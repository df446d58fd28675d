// Harness of the cluster suite (test/cluster.test.mjs): a redis-server of our own and
// several Caddy instances (lib/server.js's TestServer) that share ONE data directory and
// ONE Redis, each on its own port and admin port.
//
//  - RedisServer: redis-server on a free 127.0.0.1 port in a temp dir, with an
//    append-only file fsynced on every write (--appendonly yes --appendfsync always,
//    --save ''); stop (SIGTERM: Redis fsyncs and exits), kill -9, restart on the same port
//    and dir (it reloads its AOF), pause/resume (SIGSTOP/SIGCONT: a Redis that accepts TCP
//    but never answers);
//  - a tiny RESP client over node:net (binary-safe: bulk strings are Buffers, so the
//    stream's Yjs updates come back byte for byte), one TCP connection per call;
//  - Cluster: the instances, their Caddyfiles (`cluster redis { ... }` inside the wiredb
//    route), kill -9 / restart / `caddy reload` of one, the room's Redis keys
//    (wiredb:{K}:meta, :log, :aw) and its durable state (meta.cp's checkpoint file + the
//    stream entries after it) as a Y.Doc.
//
// Every process started here is ended by its own PID (at the latest on process exit), every
// wait is bounded, every server listens on 127.0.0.1 only.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import * as Y from 'yjs'
import { TestServer, freePort, httpRequest } from './server.js'
import { parseWireFile } from './wirefile.js'
import { tryUpgrade, closeWs } from './access.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------
// Finding redis-server

/** the redis-server binary: $WIREDB_REDIS_SERVER, else the first on PATH; null if none */
export function findRedisServer () {
  const env = process.env.WIREDB_REDIS_SERVER
  if (env) return fs.existsSync(env) ? env : null
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue
    const p = path.join(dir, 'redis-server')
    try { fs.accessSync(p, fs.constants.X_OK); return p } catch {}
  }
  return null
}

// ---------------------------------------------------------------------------
// RESP (REdis Serialization Protocol, v2): a binary-safe client

class RespError extends Error {}

/** encodes one command (strings, numbers, Buffers/Uint8Arrays) as a RESP array of bulk strings */
export function encodeCommand (args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : a instanceof Uint8Array ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : Buffer.from(String(a), 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/**
 * Parses one RESP value from buf at pos. Returns {value, pos} or null when more bytes are
 * needed. Bulk strings are Buffers, simple strings strings, errors RespError instances
 * (as values: inside EXEC an error is one element), integers numbers, null bulk/array null.
 */
export function parseResp (buf, pos = 0) {
  if (pos >= buf.length) return null
  const eol = buf.indexOf('\r\n', pos)
  if (eol < 0) return null
  const type = String.fromCharCode(buf[pos])
  const line = buf.subarray(pos + 1, eol).toString('utf8')
  const next = eol + 2
  switch (type) {
    case '+': return { value: line, pos: next }
    case '-': return { value: new RespError(line), pos: next }
    case ':': return { value: Number(line), pos: next }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, pos: next }
      if (buf.length < next + n + 2) return null
      return { value: Buffer.from(buf.subarray(next, next + n)), pos: next + n + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, pos: next }
      const out = []
      let p = next
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p)
        if (!r) return null
        out.push(r.value)
        p = r.pos
      }
      return { value: out, pos: p }
    }
    default: throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)} at ${pos}`)
  }
}

/**
 * Sends commands in one pipeline on a new TCP connection to 127.0.0.1:port and resolves
 * to their replies, in order. A reply that is a Redis error rejects (unless
 * {errorsAsValues: true}). Bounded by `timeout`.
 * @param {number} port
 * @param {Array<Array<string|number|Buffer>>} commands
 */
export function redisPipeline (port, commands, { timeout = 5000, errorsAsValues = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    let buf = Buffer.alloc(0)
    const replies = []
    let settled = false
    const finish = (err, v) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err); else resolve(v)
    }
    const what = () => commands.map((c) => String(c[0])).join(',')
    const timer = setTimeout(() => finish(new Error(`redis :${port} ${what()}: no reply within ${timeout} ms (${replies.length}/${commands.length} replies)`)), timeout)
    sock.on('connect', () => sock.write(Buffer.concat(commands.map(encodeCommand))))
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      let pos = 0
      try {
        while (replies.length < commands.length) {
          const r = parseResp(buf, pos)
          if (!r) break
          replies.push(r.value)
          pos = r.pos
        }
      } catch (e) { return finish(e) }
      buf = buf.subarray(pos)
      if (replies.length === commands.length) {
        const err = replies.find((r) => r instanceof RespError)
        if (err && !errorsAsValues) finish(new Error(`redis :${port} ${what()}: ${err.message}`))
        else finish(null, replies)
      }
    })
    sock.on('error', (e) => finish(new Error(`redis :${port} ${what()}: ${e.message}`)))
    sock.on('close', () => finish(new Error(`redis :${port} ${what()}: connection closed after ${replies.length}/${commands.length} replies`)))
  })
}

/** one command; resolves to its reply */
export async function redisCall (port, args, opts) {
  return (await redisPipeline(port, [args], opts))[0]
}

const str = (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)

/** a flat [k, v, k, v] reply as an object of strings */
export function pairsToObject (arr) {
  const out = {}
  if (!arr) return out
  for (let i = 0; i + 1 < arr.length; i += 2) out[str(arr[i])] = str(arr[i + 1])
  return out
}

/** an XRANGE reply as [{id, fields: {name: Buffer}}] */
export function streamEntries (reply) {
  return (reply || []).map(([id, kv]) => {
    const fields = {}
    for (let i = 0; i + 1 < kv.length; i += 2) fields[str(kv[i])] = kv[i + 1]
    return { id: str(id), fields }
  })
}

// ---------------------------------------------------------------------------
// Processes we started: ended by PID on exit, whatever happens

const liveProcs = new Set()
process.on('exit', () => {
  for (const p of liveProcs) {
    try { if (p.exitCode === null && p.signalCode === null) { process.kill(p.pid, 'SIGCONT'); process.kill(p.pid, 'SIGKILL') } } catch {}
  }
})

function waitExit (proc, ms) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms)
    proc.once('exit', () => { clearTimeout(t); resolve(true) })
  })
}

// ---------------------------------------------------------------------------
// redis-server

const REDIS_START_TIMEOUT_MS = 15000
const REDIS_STOP_TIMEOUT_MS = 10000

export class RedisServer {
  /**
   * @param {{ bin?: string, dir?: string, extraArgs?: string[] }} [o] dir: where the AOF
   *   lives (default: a new temp dir); extraArgs: more redis-server options
   */
  constructor ({ bin, dir, extraArgs = [] } = {}) {
    this.bin = bin || findRedisServer()
    if (!this.bin) throw new Error('redis-server not found (install it, or set WIREDB_REDIS_SERVER)')
    this.tmpDir = dir || fs.mkdtempSync(path.join(os.tmpdir(), 'wiredb-redis-'))
    this.ownsDir = !dir
    this.logFile = path.join(this.tmpDir, 'redis.log')
    this.extraArgs = extraArgs
    this.port = 0
    this.proc = null
    this.paused = false
    this.starts = 0
    this.unexpectedExits = []
  }

  get pid () { return this.proc ? this.proc.pid : undefined }
  get running () { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null }
  /** the URL the instances use: database 0 */
  get url () { return `redis://127.0.0.1:${this.port}/0` }

  log () { try { return fs.readFileSync(this.logFile, 'utf8') } catch { return '' } }

  dumpLog (title = 'redis log', maxChars = 6000) {
    let text = this.log()
    if (text.length > maxChars) text = '...[cut]...\n' + text.slice(-maxChars)
    process.stderr.write(`\n----- ${title} (${this.logFile}) -----\n${text}\n----- end of ${title} -----\n`)
  }

  args () {
    return [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.tmpDir,
      '--appendonly', 'yes',
      '--appendfsync', 'always',
      '--save', '',
      '--daemonize', 'no',
      '--logfile', '',
      ...this.extraArgs
    ]
  }

  /** starts (or restarts on the same port and dir, loading its AOF); resolves once PING answers PONG */
  async start () {
    if (this.running) throw new Error('redis already running')
    if (!this.port) this.port = await freePort()
    this.starts++
    const fd = fs.openSync(this.logFile, 'a')
    fs.writeSync(fd, `\n===== redis start #${this.starts} at ${new Date().toISOString()} =====\n$ ${this.bin} ${this.args().map((a) => a === '' ? "''" : a).join(' ')}\n`)
    const proc = spawn(this.bin, this.args(), { cwd: this.tmpDir, stdio: ['ignore', fd, fd] })
    fs.closeSync(fd)
    this.proc = proc
    this.paused = false
    this.expectExit = false
    liveProcs.add(proc)
    proc.on('exit', (code, signal) => {
      liveProcs.delete(proc)
      if (!this.expectExit) this.unexpectedExits.push({ code, signal, at: new Date().toISOString() })
    })
    let spawnErr = null
    proc.once('error', (e) => { spawnErr = e })
    const deadline = Date.now() + REDIS_START_TIMEOUT_MS
    let last = ''
    while (true) {
      if (spawnErr) { last = `spawn failed: ${spawnErr.message}`; break }
      if (!this.running) { last = `redis-server exited during start-up (code ${proc.exitCode}, signal ${proc.signalCode})`; break }
      try {
        const r = await redisCall(this.port, ['PING'], { timeout: 1000, errorsAsValues: true })
        if (r === 'PONG') return this
        last = `PING answered ${r instanceof Error ? r.message : JSON.stringify(r)}` // e.g. LOADING
      } catch (e) { last = e.message }
      if (Date.now() > deadline) break
      await sleep(50)
    }
    await this.kill9().catch(() => {})
    this.dumpLog('redis log (start-up failed)')
    throw new Error(`redis-server on 127.0.0.1:${this.port} did not answer PING within ${REDIS_START_TIMEOUT_MS} ms: ${last}`)
  }

  /** graceful stop: SIGTERM (Redis fsyncs the AOF and exits), SIGKILL after 10 s */
  async stop () {
    if (!this.running) return
    this.expectExit = true
    if (this.paused) this.resume()
    process.kill(this.proc.pid, 'SIGTERM')
    if (!await waitExit(this.proc, REDIS_STOP_TIMEOUT_MS)) {
      process.stderr.write(`redis pid ${this.proc.pid} did not exit within ${REDIS_STOP_TIMEOUT_MS} ms of SIGTERM; SIGKILL\n`)
      process.kill(this.proc.pid, 'SIGKILL')
      await waitExit(this.proc, REDIS_STOP_TIMEOUT_MS)
    }
  }

  /** crash: SIGKILL (the AOF holds every write Redis acknowledged: appendfsync always) */
  async kill9 () {
    if (!this.running) return
    this.expectExit = true
    process.kill(this.proc.pid, 'SIGKILL')
    this.paused = false
    await waitExit(this.proc, REDIS_STOP_TIMEOUT_MS)
  }

  async restart ({ kill9 = false } = {}) {
    if (kill9) await this.kill9(); else await this.stop()
    await this.start()
    return this
  }

  /** SIGSTOP: the port still accepts TCP connections, nothing is answered */
  pause () {
    if (!this.running) throw new Error('pause: redis is not running')
    process.kill(this.proc.pid, 'SIGSTOP')
    this.paused = true
  }

  resume () {
    if (this.running && this.paused) process.kill(this.proc.pid, 'SIGCONT')
    this.paused = false
  }

  /** one command (see redisCall) */
  call (...args) { return redisCall(this.port, args) }
  pipeline (commands, opts) { return redisPipeline(this.port, commands, opts) }

  /** stops it and removes its dir (kept with WIREDB_KEEP_TMP=1) */
  async close () {
    await this.stop()
    if (this.ownsDir) {
      if (process.env.WIREDB_KEEP_TMP !== '1') fs.rmSync(this.tmpDir, { recursive: true, force: true })
      else process.stderr.write(`kept ${this.tmpDir}\n`)
    }
  }
}

// ---------------------------------------------------------------------------
// Keys of a room (the contract: wiredb:{K}:meta, :log, :aw, :ch, :lease)

export function roomKeys (room, prefix = 'wiredb') {
  const k = `${prefix}:{${room}}`
  return { meta: `${k}:meta`, log: `${k}:log`, aw: `${k}:aw`, ch: `${k}:ch`, lease: `${k}:lease` }
}

/** `<encoded key>@<seq, 20 digits>-<8 hex>.y` */
export const CHECKPOINT_NAME = /^(.+)@(\d{20})-([0-9a-f]{8})\.y$/

/** the seq of a stream entry id `<seq>-<i>` as a BigInt */
export const entrySeq = (id) => BigInt(id.split('-')[0])

// ---------------------------------------------------------------------------
// The cluster

/** y-websocket base URL of an instance */
const wsBaseOf = (srv) => srv.wsBase

export class Cluster {
  /**
   * @param {object} [o]
   * @param {number} [o.n] instances (default 3)
   * @param {boolean} [o.cluster] put `cluster redis {...}` in the route (default true; false
   *   starts the instances in single mode on the shared dir: only for checking the harness)
   * @param {string[]} [o.wiredbDirectives] more lines in every instance's wiredb block
   * @param {string[]} [o.clusterDirectives] more lines in the `cluster redis` block
   * @param {string[]} [o.siteDirectives] more lines in every site block
   * @param {string} [o.keyPrefix] key_prefix (written only when set; default 'wiredb')
   * @param {string[]} [o.names] instance ids (default a, b, c, ...)
   */
  constructor (o = {}) {
    this.o = { n: 3, cluster: true, wiredbDirectives: [], clusterDirectives: [], siteDirectives: [], ...o }
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wiredb-cluster-'))
    this.dataDir = path.join(this.tmpDir, 'data')
    fs.mkdirSync(this.dataDir, { recursive: true })
    this.prefix = this.o.keyPrefix || 'wiredb'
    this.names = this.o.names || Array.from({ length: this.o.n }, (_, i) => String.fromCharCode(97 + i))
    this.redis = null
    this.instances = []
  }

  static async start (o) {
    const c = new Cluster(o)
    try {
      await c.start()
    } catch (e) {
      // an instance that failed to start has printed its own log already
      for (const s of c.instances) if (s.running) s.dumpLog(`instance ${s.name} log (cluster start-up failed)`, 15000)
      if (c.redis) c.redis.dumpLog('redis log (cluster start-up failed)')
      await c.close()
      throw e
    }
    return c
  }

  /** the wiredb lines of instance `name` (the `cluster redis` block included) */
  wiredbLines (name) {
    const lines = [...this.o.wiredbDirectives]
    if (this.o.cluster) {
      lines.push('cluster redis {', `\turl ${this.redis.url}`, `\tinstance_id ${name}`)
      if (this.o.keyPrefix) lines.push(`\tkey_prefix ${this.o.keyPrefix}`)
      lines.push(...this.o.clusterDirectives.map((l) => '\t' + l), '}')
    }
    return lines
  }

  async start () {
    const redisDir = path.join(this.tmpDir, 'redis')
    fs.mkdirSync(redisDir, { recursive: true })
    // WIREDB_CLUSTER_REDIS_ARGS: more redis-server options for every cluster (later ones win),
    // e.g. '--appendonly no' to see the durability tests fail against a Redis that forgets
    const extra = (process.env.WIREDB_CLUSTER_REDIS_ARGS || '').split(/\s+/).filter(Boolean).map((a) => (a === "''" ? '' : a))
    this.redis = new RedisServer({ dir: redisDir, extraArgs: extra })
    await this.redis.start()
    for (const name of this.names) {
      const srv = new TestServer({
        mode: 'caddy',
        admin: true,
        dataDir: this.dataDir,
        wiredbDirectives: this.wiredbLines(name),
        siteDirectives: this.o.siteDirectives,
        inRoute: false
      })
      srv.name = name
      this.instances.push(srv)
    }
    // in parallel: each waits for its own port, then until it takes WebSocket clients
    await Promise.all(this.instances.map((s) => s.start()))
    await Promise.all(this.instances.map((s) => this.waitReady(s)))
    return this
  }

  /**
   * Waits (bounded) until `srv` upgrades a WebSocket (an instance answers 503 until its
   * subscription to Redis is in place); sets srv.readyMs (time from now) and
   * srv.readyRefusals (the refusals seen: [status, body]). Uses the room `ready-probe`.
   */
  async waitReady (srv, timeout = 15000) {
    const t0 = Date.now()
    srv.readyRefusals = []
    while (true) {
      let r
      try { r = await tryUpgrade(srv.roomUrl('ready-probe'), { timeout: 5000 }) } catch (e) { r = { open: false, status: 0, body: e.message } }
      if (r.open) { await closeWs(r.ws); srv.readyMs = Date.now() - t0; return srv.readyMs }
      srv.readyRefusals.push([r.status, (r.body || '').trim()])
      if (Date.now() - t0 > timeout) throw new Error(`instance ${srv.name} did not take a WebSocket client within ${timeout} ms: ${JSON.stringify(srv.readyRefusals.slice(-3))}`)
      await sleep(25)
    }
  }

  get a () { return this.instances[0] }
  get b () { return this.instances[1] }
  get c () { return this.instances[2] }
  instance (name) { return this.instances.find((s) => s.name === name) }

  /** unexpected exits of any process (an instance or Redis), as text, or '' */
  crashes () {
    const out = []
    for (const s of this.instances) if (s.unexpectedExits.length) out.push(`instance ${s.name}: ${JSON.stringify(s.unexpectedExits)}`)
    if (this.redis && this.redis.unexpectedExits.length) out.push(`redis: ${JSON.stringify(this.redis.unexpectedExits)}`)
    return out.join('; ')
  }

  dumpLogs (why = '') {
    for (const s of this.instances) s.dumpLog(`instance ${s.name} log${why ? ' (' + why + ')' : ''}`, 15000)
    if (this.redis) this.redis.dumpLog(`redis log${why ? ' (' + why + ')' : ''}`)
  }

  /** `caddy reload` (the CLI, against the instance's admin endpoint) with changed options */
  async reload (srv, changes = {}, opts = {}) {
    const merged = { ...changes }
    if (changes.wiredbDirectives) {
      // the cluster block stays
      this.o.wiredbDirectives = changes.wiredbDirectives
      merged.wiredbDirectives = this.wiredbLines(srv.name)
    }
    return await srv.reload(merged, { via: 'cli', ...opts })
  }

  /** stops every instance (SIGTERM; SIGKILL after 10 s) and Redis; removes the temp dir */
  async close () {
    await Promise.all(this.instances.map((s) => s.close().catch((e) => process.stderr.write(`close ${s.name}: ${e.message}\n`))))
    if (this.redis) await this.redis.close().catch((e) => process.stderr.write(`close redis: ${e.message}\n`))
    if (process.env.WIREDB_KEEP_TMP !== '1') fs.rmSync(this.tmpDir, { recursive: true, force: true })
    else process.stderr.write(`kept ${this.tmpDir}\n`)
  }

  // -- the room in Redis ----------------------------------------------------------

  keys (room) { return roomKeys(room, this.prefix) }

  /** HGETALL of the room's meta hash, as strings ({} if absent) */
  async meta (room) { return pairsToObject(await this.redis.call('HGETALL', this.keys(room).meta)) }

  async xlen (room) { return await this.redis.call('XLEN', this.keys(room).log) }

  /** HGETALL of the room's awareness hash: {field: Buffer} */
  async awareness (room) {
    const arr = await this.redis.call('HGETALL', this.keys(room).aw)
    const out = {}
    for (let i = 0; i + 1 < (arr || []).length; i += 2) out[str(arr[i])] = arr[i + 1]
    return out
  }

  /** meta and the whole stream, read atomically (MULTI/EXEC) */
  async roomState (room) {
    const k = this.keys(room)
    const r = await this.redis.pipeline([['MULTI'], ['HGETALL', k.meta], ['XRANGE', k.log, '-', '+'], ['EXEC']])
    const [meta, log] = r[3]
    return { meta: pairsToObject(meta), entries: streamEntries(log) }
  }

  /** the checkpoint files of a room in the data dir: [{name, seq: BigInt, hex}] sorted by seq */
  checkpointFiles (room) {
    const out = []
    for (const name of fs.readdirSync(this.dataDir)) {
      const m = CHECKPOINT_NAME.exec(name)
      if (m && m[1] === room) out.push({ name, seq: BigInt(m[2]), hex: m[3] })
    }
    return out.sort((x, y) => (x.seq < y.seq ? -1 : x.seq > y.seq ? 1 : 0))
  }

  /**
   * The room's durable state, rebuilt independently of the server: the checkpoint file
   * meta.cp names (read with wirefile.js), then every `u` of the stream applied on top.
   * Read atomically; retried (bounded) if the checkpoint file was replaced meanwhile.
   * @returns {Promise<{ doc: Y.Doc, meta: object, entries: object[], cpRecords: number, pending: boolean, describe: string }>}
   */
  async durableDoc (room, { attempts = 5 } = {}) {
    let lastErr
    for (let i = 0; i < attempts; i++) {
      const { meta, entries } = await this.roomState(room)
      const doc = new Y.Doc()
      let cpRecords = 0
      try {
        if (meta.cp) {
          const file = path.isAbsolute(meta.cp) ? meta.cp : path.join(this.dataDir, meta.cp)
          const parsed = parseWireFile(fs.readFileSync(file))
          if (parsed.torn) throw new Error(`checkpoint ${meta.cp} has a torn tail of ${parsed.torn} bytes`)
          for (const r of parsed.records) Y.applyUpdate(doc, r)
          cpRecords = parsed.records.length
        }
      } catch (e) {
        if (e.code === 'ENOENT') { lastErr = e; await sleep(100); continue }
        throw e
      }
      for (const e of entries) {
        if (!e.fields.u) throw new Error(`stream entry ${e.id} has no field u (fields ${Object.keys(e.fields)})`)
        Y.applyUpdate(doc, new Uint8Array(e.fields.u))
      }
      const pending = doc.store.pendingStructs !== null || doc.store.pendingDs !== null
      const describe = `meta=${JSON.stringify(meta)} checkpoint records=${cpRecords} stream entries=${entries.length} ` +
        `(ids ${entries.length ? entries[0].id + '..' + entries[entries.length - 1].id : 'none'}) pending=${pending}`
      return { doc, meta, entries, cpRecords, pending, describe }
    }
    throw new Error(`durableDoc(${room}): the checkpoint file kept disappearing: ${lastErr && lastErr.message}`)
  }

  /** every key in this Redis (a test Redis: KEYS is fine), for diagnostics */
  async allKeys () { return (await this.redis.call('KEYS', '*')).map(str).sort() }
}

/**
 * Wraps a test body that gets a fresh cluster: starts it with `opts`, runs fn(t, cluster),
 * fails if any process of ours exited unasked, prints every log on failure, and ends every
 * process (by PID) in the end, whatever happened.
 */
export function withCluster (opts, fn) {
  return async (t) => {
    const cl = await Cluster.start(typeof opts === 'function' ? opts() : opts)
    try {
      await fn(t, cl)
      const crashes = cl.crashes()
      if (crashes) throw new Error(`a process exited unexpectedly during the test: ${crashes}`)
    } catch (e) {
      cl.dumpLogs(`failed test "${t.name}"`)
      throw e
    } finally {
      await cl.close()
    }
  }
}

/** sum of every sample of a metric whose name (without labels) ends with `suffix` */
export function metricSum (metrics, suffix) {
  let sum = 0; let found = false
  for (const [k, v] of metrics) {
    const name = k.split('{')[0]
    if (name === suffix || name.endsWith('_' + suffix) || name.endsWith(suffix)) { sum += v; found = true }
  }
  return found ? sum : null
}

export { wsBaseOf, httpRequest }
