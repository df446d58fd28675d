// Starts the server under test: our Caddy build (default) or the reference
// y-websocket server (WIREDB_SERVER=ywebsocket), and stops it again.
//
// Every wait here is bounded in time; every process is ended by its own PID.

import { spawn, execFile } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const NODE_DIR = path.resolve(here, '..')
export const REPO_ROOT = path.resolve(NODE_DIR, '..', '..')

/** 'caddy' (default) or 'ywebsocket' */
export const MODE = process.env.WIREDB_SERVER || 'caddy'
if (MODE !== 'caddy' && MODE !== 'ywebsocket') {
  throw new Error(`WIREDB_SERVER must be 'caddy' or 'ywebsocket', got '${MODE}'`)
}
export const IS_CADDY = MODE === 'caddy'

/** Use as `test(name, { skip: caddyOnly('why') }, fn)`: a visible skip, never a silent pass. */
// WIREDB_NO_SKIP=1 runs them anyway (to see how another server fails them).
export const caddyOnly = (why) =>
  IS_CADDY || process.env.WIREDB_NO_SKIP === '1' ? false : `only meaningful for the wiredb server (WIREDB_SERVER=${MODE}): ${why}`

const START_TIMEOUT_MS = 15000
const STOP_TIMEOUT_MS = 10000

const DEFAULT_GLOBAL = ['admin off', 'auto_https off', 'persist_config off']

/** A free TCP port on 127.0.0.1 (asked from the kernel). */
// Ports handed out by freePort in this process: the kernel may hand the same free port to
// two consecutive listen(0) calls, and Caddy listens with SO_REUSEPORT, so a server's HTTP
// and admin listeners given one port would share it (and the admin API would answer some
// WebSocket upgrades with 400).
const handedOut = new Set()

export async function freePort () {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.unref()
      srv.on('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('freePort: no port that was not handed out already')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function tryConnect (port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    const done = (ok) => { sock.destroy(); resolve(ok) }
    sock.setTimeout(500, () => done(false))
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

/**
 * One HTTP request on a new TCP connection (no keep-alive pool: a pooled idle connection
 * to a config that a reload replaced is closed by that server's shutdown, and reusing it
 * fails with "other side closed"). Bounded; resolves to {status, headers, body}.
 * @param {string} url
 * @param {{ method?: string, headers?: object, body?: string|Buffer, timeout?: number }} [o]
 */
export function httpRequest (url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout }, (res) => {
      const chunks = []
      res.on('data', (d) => chunks.push(d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)))
    req.on('error', (e) => reject(new Error(`${method} ${url}: ${e.message}`)))
    req.end(body)
  })
}

function indent (lines, n) {
  const pad = '\t'.repeat(n)
  return lines.map((l) => pad + l).join('\n')
}

function asLines (x) {
  if (x == null) return []
  if (Array.isArray(x)) return x.flatMap((l) => String(l).split('\n'))
  return String(x).split('\n')
}

/**
 * Builds the Caddyfile text. Exported so a test can check or vary it.
 * @param {object} o
 * @param {number} o.port
 * @param {string} o.dataDir
 * @param {string|string[]} [o.globalOptions] lines of the global options block (replaces the default)
 * @param {number} [o.adminPort] when set (and globalOptions is not), admin listens on 127.0.0.1:<adminPort>
 * @param {string|string[]} [o.wiredbDirectives] extra lines inside `wiredb /rooms/* { ... }`
 * @param {string|string[]} [o.siteDirectives] extra lines inside the site block
 * @param {string} [o.matcher] path matcher of the directive (default /rooms/*)
 * @param {boolean} [o.inRoute] wrap the wiredb directive in `route { }`
 */
export function caddyfileText (o) {
  let global = asLines(o.globalOptions)
  if (o.globalOptions == null) {
    global = o.adminPort
      ? [`admin 127.0.0.1:${o.adminPort}`, ...DEFAULT_GLOBAL.slice(1)]
      : DEFAULT_GLOBAL
  }
  const wiredb = [
    `wiredb ${o.matcher || '/rooms/*'} {`,
    `\tdata_dir ${o.dataDir}`,
    ...asLines(o.wiredbDirectives).map((l) => '\t' + l),
    '}'
  ]
  const handler = o.inRoute ? ['route {', ...wiredb.map((l) => '\t' + l), '}'] : wiredb
  return [
    '{',
    indent(global, 1),
    '}',
    '',
    `http://127.0.0.1:${o.port} {`,
    '\tbind 127.0.0.1',
    indent(handler, 1),
    indent(asLines(o.siteDirectives), 1),
    '}',
    ''
  ].join('\n')
}

/**
 * Starts the server under test.
 *
 * @param {object} [opts]
 * @param {string} [opts.mode] overrides WIREDB_SERVER
 * @param {string|string[]} [opts.globalOptions] Caddy global options (lines)
 * @param {boolean} [opts.admin] enable the admin endpoint on a free 127.0.0.1 port (adminUrl)
 * @param {string|string[]} [opts.wiredbDirectives] extra wiredb subdirectives (lines)
 * @param {string|string[]} [opts.siteDirectives] extra site directives (lines)
 * @param {boolean} [opts.inRoute] wrap wiredb in a route block
 * @param {string} [opts.dataDir] reuse a data dir (default: <tmp>/data)
 * @param {object} [opts.env] extra environment for the server process
 * @returns {Promise<TestServer>}
 */
export async function startServer (opts = {}) {
  const srv = new TestServer(opts)
  await srv.start()
  return srv
}

const live = new Set()
process.on('exit', () => {
  // last resort: never leave a server of ours running
  for (const s of live) {
    try { if (s.proc && s.proc.exitCode === null && s.proc.signalCode === null) process.kill(s.proc.pid, 'SIGKILL') } catch {}
  }
})

export class TestServer {
  constructor (opts) {
    this.opts = opts
    this.mode = opts.mode || MODE
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wiredb-e2e-'))
    this.dataDir = opts.dataDir || path.join(this.tmpDir, 'data')
    fs.mkdirSync(this.dataDir, { recursive: true })
    this.logFile = path.join(this.tmpDir, 'server.log')
    this.port = 0
    this.adminPort = 0
    this.proc = null
    this.starts = 0
    /** exits that we did not ask for: [{code, signal, at}] */
    this.unexpectedExits = []
  }

  get pid () { return this.proc ? this.proc.pid : undefined }
  /** http base, e.g. http://127.0.0.1:1234 */
  get url () { return `http://127.0.0.1:${this.port}` }
  /** base URL handed to WebsocketProvider; it appends '/' + roomName */
  get wsBase () { return `ws://127.0.0.1:${this.port}/rooms` }
  get adminUrl () { return this.adminPort ? `http://127.0.0.1:${this.adminPort}` : undefined }
  /** full websocket URL of a room (what y-websocket connects to) */
  roomUrl (room) { return `${this.wsBase}/${room}` }

  get running () {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null
  }

  log () {
    try { return fs.readFileSync(this.logFile, 'utf8') } catch { return '' }
  }

  /** prints the server log (all of it, or the last `maxChars`) to stderr */
  dumpLog (title = 'server log', maxChars = 20000) {
    let text = this.log()
    if (text.length > maxChars) text = '...[cut]...\n' + text.slice(-maxChars)
    process.stderr.write(`\n----- ${title} (${this.mode}, ${this.logFile}) -----\n${text}\n----- end of ${title} -----\n`)
  }

  async start () {
    if (this.running) throw new Error('server already running')
    if (!this.port) this.port = await freePort()
    if (this.opts.admin && !this.adminPort) this.adminPort = await freePort()
    this.starts++
    const logFd = fs.openSync(this.logFile, 'a')
    fs.writeSync(logFd, `\n===== start #${this.starts} at ${new Date().toISOString()} =====\n`)
    let cmd, args, env, cwd
    if (this.mode === 'caddy') {
      const bin = process.env.WIREDB_CADDY_BIN
      if (!bin) throw new Error('WIREDB_CADDY_BIN is not set (build it: cd <repo> && go build -o .bin/caddy ./cmd/caddy)')
      if (!fs.existsSync(bin)) throw new Error(`WIREDB_CADDY_BIN=${bin} does not exist`)
      this.caddyfile = path.join(this.tmpDir, 'Caddyfile')
      fs.writeFileSync(this.caddyfile, this.caddyfileText())
      cmd = path.resolve(bin)
      args = ['run', '--config', this.caddyfile, '--adapter', 'caddyfile']
      env = this._caddyEnv()
      cwd = this.tmpDir
    } else {
      cmd = process.execPath
      args = [path.join(NODE_DIR, 'node_modules', '@y', 'websocket-server', 'src', 'server.js')]
      env = { ...process.env, HOST: '127.0.0.1', PORT: String(this.port), ...this.opts.env }
      cwd = this.tmpDir
    }
    fs.writeSync(logFd, `$ ${cmd} ${args.join(' ')}\n`)
    const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', logFd, logFd] })
    fs.closeSync(logFd)
    this.proc = proc
    this.expectExit = false
    live.add(this)
    proc.on('exit', (code, signal) => {
      if (!this.expectExit) this.unexpectedExits.push({ code, signal, at: new Date().toISOString() })
    })
    const spawnError = new Promise((resolve) => proc.once('error', resolve))

    const deadline = Date.now() + START_TIMEOUT_MS
    let err = null
    while (true) {
      if (!this.running) { err = `server exited during start-up (code ${proc.exitCode}, signal ${proc.signalCode})`; break }
      if (await tryConnect(this.port)) break
      if (Date.now() > deadline) { err = `server did not accept TCP connections on 127.0.0.1:${this.port} within ${START_TIMEOUT_MS} ms`; break }
      const e = await Promise.race([spawnError, sleep(50)])
      if (e) { err = `spawn failed: ${e.message}`; break }
    }
    if (err) {
      await this.kill9().catch(() => {})
      this.dumpLog('server log (start-up failed)')
      if (this.caddyfile) process.stderr.write(`----- Caddyfile -----\n${fs.readFileSync(this.caddyfile, 'utf8')}\n`)
      throw new Error(err)
    }
    return this
  }

  /** the Caddyfile of the current options (this.opts; a reload or a later start() uses it) */
  caddyfileText () {
    return caddyfileText({
      port: this.port,
      adminPort: this.adminPort,
      dataDir: this.dataDir,
      globalOptions: this.opts.globalOptions,
      wiredbDirectives: this.opts.wiredbDirectives,
      siteDirectives: this.opts.siteDirectives,
      inRoute: this.opts.inRoute ?? (process.env.WIREDB_CADDY_ROUTE === '1')
    })
  }

  _caddyEnv () {
    const home = path.join(this.tmpDir, 'home')
    return {
      ...process.env,
      HOME: home,
      XDG_DATA_HOME: path.join(home, 'data'),
      XDG_CONFIG_HOME: path.join(home, 'config'),
      ...this.opts.env
    }
  }

  /**
   * Reloads the running Caddy with changed options (merged into this.opts, so a later
   * start() uses them too): through the admin API (`POST /load`, text/caddyfile) or with
   * `caddy reload --address <admin>`. Needs startServer({ admin: true }). Bounded in time;
   * throws unless Caddy accepted the new config.
   * @param {object} changes e.g. { siteDirectives: [...], wiredbDirectives: [...] }
   * @param {{ via?: 'api'|'cli', timeout?: number }} [o]
   * @returns {Promise<{ via: string, ms: number, output: string }>}
   */
  async reload (changes = {}, { via = 'api', timeout = 15000 } = {}) {
    if (this.mode !== 'caddy') throw new Error('reload: only the caddy server can be reloaded')
    if (!this.adminPort) throw new Error('reload: needs the admin endpoint (startServer({ admin: true }))')
    if (!this.running) throw new Error('reload: server is not running')
    Object.assign(this.opts, changes)
    const text = this.caddyfileText()
    fs.writeFileSync(this.caddyfile, text)
    const t0 = Date.now()
    if (via === 'api') {
      // (the admin server itself is replaced on every load: a new connection each time)
      const res = await httpRequest(`${this.adminUrl}/load`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/caddyfile' },
        body: text,
        timeout
      })
      if (res.status !== 200) throw new Error(`reload: POST ${this.adminUrl}/load answered ${res.status}: ${res.body}`)
      return { via, ms: Date.now() - t0, output: res.body }
    }
    if (via === 'cli') {
      const bin = path.resolve(process.env.WIREDB_CADDY_BIN)
      const args = ['reload', '--config', this.caddyfile, '--adapter', 'caddyfile', '--address', `127.0.0.1:${this.adminPort}`]
      const output = await new Promise((resolve, reject) => {
        // execFile's timeout ends this one child (by its PID)
        execFile(bin, args, { cwd: this.tmpDir, env: this._caddyEnv(), timeout, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
          if (err) reject(new Error(`reload: ${bin} ${args.join(' ')} failed (${err.killed ? 'timed out' : `exit ${err.code}`}):\n${stdout}${stderr}`))
          else resolve(stdout + stderr)
        })
      })
      return { via, ms: Date.now() - t0, output }
    }
    throw new Error(`reload: via must be 'api' or 'cli', got ${via}`)
  }

  async _waitExit (timeoutMs) {
    const proc = this.proc
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return true
    return await new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs)
      proc.once('exit', () => { clearTimeout(t); resolve(true) })
    })
  }

  /** graceful stop (SIGTERM, then SIGKILL after 10 s); resolves to {code, signal, graceful} */
  async stop () {
    if (!this.running) return { code: this.proc?.exitCode, signal: this.proc?.signalCode, graceful: true }
    this.expectExit = true
    process.kill(this.proc.pid, 'SIGTERM')
    let graceful = await this._waitExit(STOP_TIMEOUT_MS)
    if (!graceful) {
      process.stderr.write(`server pid ${this.proc.pid} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM; sending SIGKILL\n`)
      process.kill(this.proc.pid, 'SIGKILL')
      await this._waitExit(STOP_TIMEOUT_MS)
    }
    live.delete(this)
    return { code: this.proc.exitCode, signal: this.proc.signalCode, graceful }
  }

  /** crash: SIGKILL, no chance to flush anything */
  async kill9 () {
    if (!this.running) return
    this.expectExit = true
    process.kill(this.proc.pid, 'SIGKILL')
    await this._waitExit(STOP_TIMEOUT_MS)
    live.delete(this)
  }

  /** stop (gracefully unless {kill9: true}) and start again on the same port and data dir */
  async restart ({ kill9 = false } = {}) {
    if (kill9) await this.kill9(); else await this.stop()
    await this.start()
    return this
  }

  /** stop and remove the temp dir (kept when WIREDB_KEEP_TMP=1) */
  async close () {
    await this.stop()
    if (process.env.WIREDB_KEEP_TMP !== '1') {
      fs.rmSync(this.tmpDir, { recursive: true, force: true })
    } else {
      process.stderr.write(`kept ${this.tmpDir}\n`)
    }
  }
}

/**
 * Wraps a test body: on failure prints the server log; after the body checks
 * that the server did not die on its own (a crash is a failure even if the
 * clients happened to be fine).
 * @param {() => TestServer|undefined} getServer
 * @param {(t: any) => Promise<void>} fn
 */
export function withServer (getServer, fn) {
  return async (t) => {
    const srv = getServer()
    const exitsBefore = srv ? srv.unexpectedExits.length : 0
    try {
      if (!srv) throw new Error('server did not start (see the before() hook)')
      await fn(t, srv)
      if (srv.unexpectedExits.length > exitsBefore) {
        throw new Error(`server exited unexpectedly during the test: ${JSON.stringify(srv.unexpectedExits.slice(exitsBefore))}`)
      }
    } catch (e) {
      if (srv) srv.dumpLog(`server log for failed test "${t.name}"`)
      throw e
    }
  }
}
