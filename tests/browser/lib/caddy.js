// Runs our Caddy (WIREDB_CADDY_BIN) with examples/Caddyfile, moved to free
// ports and a temporary data dir: the same two sites (http:// and https://
// with `tls internal`), the same wiredb route and the same file_server of
// examples/site. Every wait is bounded; the process is ended by its own PID.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { X509Certificate, createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const BROWSER_DIR = path.resolve(here, '..')
export const REPO_ROOT = path.resolve(BROWSER_DIR, '..', '..')
export const EXAMPLE_CADDYFILE = path.join(REPO_ROOT, 'examples', 'Caddyfile')
export const SITE_DIR = path.join(REPO_ROOT, 'examples', 'site')
export const BUNDLE = path.join(SITE_DIR, 'dist', 'bundle.js')

const START_TIMEOUT_MS = 20000
const STOP_TIMEOUT_MS = 12000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A free TCP port on 127.0.0.1 (asked from the kernel). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// Replaces every occurrence; throws when there is none (the example changed).
function mustReplace (text, from, to) {
  const n = text.split(from).length - 1
  if (n < 1) throw new Error(`examples/Caddyfile changed: expected ${JSON.stringify(from)} in it (update tests/browser/lib/caddy.js)`)
  return text.split(from).join(to)
}

/**
 * examples/Caddyfile with its ports, data_dir and site root replaced, admin off,
 * and an access log on each site (to see which protocol each request used).
 * @param {object} o
 * @param {number} o.httpPort
 * @param {number} o.httpsPort
 * @param {string} o.dataDir
 * @param {string[]} [o.globalLines] extra global options
 * @param {number[]} [o.extraHttpsPorts] more copies of the https:// site on these ports
 */
export function caddyfileFromExample ({ httpPort, httpsPort, dataDir, globalLines = [], extraHttpsPorts = [] }) {
  let text = fs.readFileSync(EXAMPLE_CADDYFILE, 'utf8')
  text = mustReplace(text, 'http://localhost:8080 {', `http://localhost:${httpPort} {`)
  text = mustReplace(text, 'https://localhost:8443 {', `https://localhost:${httpsPort} {`)
  text = mustReplace(text, 'data_dir ./data', `data_dir ${dataDir}`)
  text = mustReplace(text, 'root * examples/site', `root * ${SITE_DIR}`)
  // an access log on both sites (each has `bind 127.0.0.1`)
  text = mustReplace(text, '\tbind 127.0.0.1\n', '\tbind 127.0.0.1\n\tlog\n')
  // The global block: no admin endpoint on :2019 (another Caddy may be there),
  // no autosave into $HOME.
  const m = text.match(/^\{\n([\s\S]*?)\n\}\n/m)
  if (!m) throw new Error('examples/Caddyfile changed: no global options block')
  text = text.replace(m[0], `{\n${m[1]}\n\tadmin off\n\tpersist_config off\n${globalLines.map((l) => '\t' + l).join('\n')}\n}\n`)
  for (const p of extraHttpsPorts) {
    const site = text.slice(text.indexOf(`https://localhost:${httpsPort} {`))
    const block = site.slice(0, site.indexOf('\n}\n') + 3)
    text += '\n' + block.replace(`https://localhost:${httpsPort} {`, `https://localhost:${p} {`)
  }
  return text
}

function tryConnect (port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    const done = (ok) => { sock.destroy(); resolve(ok) }
    sock.setTimeout(500, () => done(false))
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

/** GET over TLS (any certificate), bounded; resolves to {status, cert} or throws. */
function httpsGet (port, pathname = '/') {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: pathname, servername: 'localhost', headers: { host: `localhost:${port}` }, rejectUnauthorized: false, agent: false, timeout: 2000 }, (res) => {
      const cert = res.socket.getPeerX509Certificate?.()
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, cert }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

const live = new Set()
process.on('exit', () => {
  for (const c of live) {
    try { if (c.running) process.kill(c.proc.pid, 'SIGKILL') } catch {}
  }
})

export class Caddy {
  /**
   * @param {object} [o]
   * @param {object} [o.env] extra environment (e.g. GODEBUG)
   * @param {string[]} [o.globalLines] extra global options; {httpsPort} and {extraPort0}... are replaced
   * @param {number} [o.extraHttpsSites] how many more copies of the https:// site, on free ports
   */
  constructor ({ env = {}, globalLines = [], extraHttpsSites = 0, name = 'caddy' } = {}) {
    const bin = process.env.WIREDB_CADDY_BIN
    if (!bin) throw new Error('WIREDB_CADDY_BIN is not set (build it: cd <repo> && go build -o .bin/caddy ./cmd/caddy)')
    if (!fs.existsSync(bin)) throw new Error(`WIREDB_CADDY_BIN=${bin} does not exist`)
    this.bin = path.resolve(bin)
    this.env = env
    this.globalLines = globalLines
    this.extraHttpsSites = extraHttpsSites
    this.name = name
    this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wiredb-browser-'))
    this.dataDir = path.join(this.tmpDir, 'data')
    // Caddy's storage (the local CA of `tls internal`) goes here, not into ~.
    this.home = path.join(this.tmpDir, 'home')
    fs.mkdirSync(this.dataDir, { recursive: true })
    this.logFile = path.join(this.tmpDir, 'caddy.log')
    this.caddyfile = path.join(this.tmpDir, 'Caddyfile')
    this.proc = null
    this.starts = 0
    this.httpPort = 0
    this.httpsPort = 0
    this.extraPorts = []
  }

  get running () { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null }
  get httpUrl () { return `http://localhost:${this.httpPort}` }
  get httpsUrl () { return `https://localhost:${this.httpsPort}` }
  log () { try { return fs.readFileSync(this.logFile, 'utf8') } catch { return '' } }

  /** JSON lines of the log (Caddy logs JSON to stderr when not on a terminal). */
  logEntries () {
    return this.log().split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) } catch { return null } }).filter(Boolean)
  }

  /** access log entries (logger http.log.access...) */
  accessLog () { return this.logEntries().filter((e) => String(e.logger || '').startsWith('http.log.access')) }

  dumpLog (title = 'caddy log', maxChars = 15000) {
    let text = this.log()
    if (text.length > maxChars) text = '...[cut]...\n' + text.slice(-maxChars)
    process.stderr.write(`\n----- ${title} (${this.name}, ${this.logFile}) -----\n${text}\n----- end of ${title} -----\n`)
  }

  async start () {
    if (this.running) throw new Error('caddy already running')
    if (!this.httpPort) {
      this.httpPort = await freePort()
      this.httpsPort = await freePort()
      for (let i = 0; i < this.extraHttpsSites; i++) this.extraPorts.push(await freePort())
    }
    let globalLines = this.globalLines.map((l) => l.replaceAll('{httpsPort}', String(this.httpsPort)))
    this.extraPorts.forEach((p, i) => { globalLines = globalLines.map((l) => l.replaceAll(`{extraPort${i}}`, String(p))) })
    fs.writeFileSync(this.caddyfile, caddyfileFromExample({
      httpPort: this.httpPort, httpsPort: this.httpsPort, dataDir: this.dataDir, globalLines, extraHttpsPorts: this.extraPorts
    }))
    this.starts++
    const fd = fs.openSync(this.logFile, 'a')
    fs.writeSync(fd, `\n===== start #${this.starts} at ${new Date().toISOString()} =====\n`)
    const env = {
      ...process.env,
      HOME: this.home,
      XDG_DATA_HOME: path.join(this.home, 'data'),
      XDG_CONFIG_HOME: path.join(this.home, 'config'),
      ...this.env
    }
    this.proc = spawn(this.bin, ['run', '--config', this.caddyfile, '--adapter', 'caddyfile'], { cwd: this.tmpDir, env, stdio: ['ignore', fd, fd] })
    fs.closeSync(fd)
    live.add(this)
    const spawnError = new Promise((resolve) => this.proc.once('error', resolve))
    const deadline = Date.now() + START_TIMEOUT_MS
    const ports = [this.httpPort, this.httpsPort, ...this.extraPorts]
    let err = null
    for (const port of ports) {
      while (!err) {
        if (!this.running) { err = `caddy exited during start-up (code ${this.proc.exitCode}, signal ${this.proc.signalCode})`; break }
        if (await tryConnect(port)) break
        if (Date.now() > deadline) { err = `caddy did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`; break }
        const e = await Promise.race([spawnError, sleep(50)])
        if (e) err = `spawn ${this.bin} failed: ${e.message}`
      }
    }
    // `tls internal` issues the certificate just after start-up: wait for a
    // TLS handshake that succeeds.
    for (const port of ports.slice(1)) {
      while (!err) {
        try { await httpsGet(port); break } catch (e) {
          if (!this.running) { err = `caddy exited during start-up (code ${this.proc.exitCode})`; break }
          if (Date.now() > deadline) { err = `no TLS on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${e.message}`; break }
          await sleep(100)
        }
      }
    }
    if (err) {
      await this.kill()
      this.dumpLog('caddy log (start-up failed)')
      process.stderr.write(`----- Caddyfile -----\n${fs.readFileSync(this.caddyfile, 'utf8')}\n`)
      throw new Error(err)
    }
    return this
  }

  /** base64 SHA-256 of the https:// site's certificate key (for Chromium's --ignore-certificate-errors-spki-list) */
  async spkiHash (port = this.httpsPort) {
    const { cert } = await httpsGet(port)
    if (!(cert instanceof X509Certificate)) throw new Error('no peer certificate')
    return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
  }

  async _waitExit (ms) {
    if (!this.running) return true
    return await new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms)
      this.proc.once('exit', () => { clearTimeout(t); resolve(true) })
    })
  }

  /** SIGTERM (Caddy closes every connection with 1001 and flushes every room), SIGKILL after 12 s */
  async stop () {
    if (!this.running) return { graceful: true }
    process.kill(this.proc.pid, 'SIGTERM')
    let graceful = await this._waitExit(STOP_TIMEOUT_MS)
    if (!graceful) {
      process.stderr.write(`caddy pid ${this.proc.pid} still running ${STOP_TIMEOUT_MS} ms after SIGTERM; SIGKILL\n`)
      process.kill(this.proc.pid, 'SIGKILL')
      await this._waitExit(STOP_TIMEOUT_MS)
    }
    live.delete(this)
    return { graceful, code: this.proc.exitCode, signal: this.proc.signalCode }
  }

  async kill () {
    if (this.running) {
      process.kill(this.proc.pid, 'SIGKILL')
      await this._waitExit(STOP_TIMEOUT_MS)
    }
    live.delete(this)
  }

  /** stop and remove the temp dir (kept with WIREDB_KEEP_TMP=1) */
  async close () {
    await this.stop()
    if (process.env.WIREDB_KEEP_TMP === '1') process.stderr.write(`kept ${this.tmpDir}\n`)
    else fs.rmSync(this.tmpDir, { recursive: true, force: true })
  }
}
