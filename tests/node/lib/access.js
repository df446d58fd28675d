// Helpers of the access-control and admin tests: y-websocket clients (the shared Client,
// with protocols, Origin or credentials in the URL), bounded raw
// WebSocket upgrades that report a refusal's HTTP status and body, JWTs signed with
// node:crypto, and the caddy CLI.

import crypto from 'node:crypto'
import { execFile } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { Client, WebSocket } from './clients.js'
import { decodeMessage } from './raw.js'

// ---------------------------------------------------------------------------
// y-websocket clients with extra options

/** clients.js's Client (which takes `protocols`, `origin` and `headers`), named ac-… */
export class AccessClient extends Client {
  constructor (base, room, opts = {}) {
    super(base, room, { ...opts, name: opts.name || `ac-${Math.random().toString(36).slice(2, 7)}` })
  }
}

export async function connectAccessClient (base, room, { waitSynced = true, timeout = 10000, ...opts } = {}) {
  const c = new AccessClient(base, room, opts)
  if (waitSynced) {
    try { await c.waitSynced(timeout) } catch (e) { await c.destroy(); throw e }
  }
  return c
}

// ---------------------------------------------------------------------------
// Raw upgrades

/**
 * Opens a WebSocket with `ws` (any headers, Origin, subprotocols) and reports what the
 * server did, bounded in time:
 *   { open: true, ws, protocol, messages }  the upgrade succeeded (caller must close ws), or
 *   { open: false, status, body, headers }  the server answered with an HTTP response.
 * messages collects the decoded server messages of an open connection (raw.js's decodeMessage).
 */
export function tryUpgrade (url, { headers, origin, protocols, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { handshakeTimeout: timeout }
    if (headers) opts.headers = headers
    if (origin) opts.origin = origin
    const ws = new WebSocket(url, protocols || [], opts)
    const messages = []
    let settled = false
    const done = (v, err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err); else resolve(v)
    }
    const timer = setTimeout(() => { try { ws.terminate() } catch {} ; done(null, new Error(`upgrade of ${url} not answered within ${timeout} ms`)) }, timeout + 500)
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => {
      if (!isBinary) messages.push({ type: 'text', text: data.toString() })
      else messages.push(decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)))
    })
    ws.once('open', () => done({ open: true, ws, protocol: ws.protocol, messages }))
    ws.once('unexpected-response', (req, res) => {
      const chunks = []
      res.on('data', (d) => chunks.push(d))
      res.on('end', () => {
        done({ open: false, status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
        req.destroy()
      })
      res.on('error', () => done({ open: false, status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
    })
    ws.on('error', (e) => done(null, new Error(`upgrade of ${url}: ${e.message}`)))
  })
}

/** closes a ws opened by tryUpgrade (bounded) */
export async function closeWs (ws) {
  if (!ws || ws.readyState === WebSocket.CLOSED) return
  const closed = new Promise((resolve) => ws.once('close', resolve))
  try { ws.close(1000, 'test done') } catch {}
  const r = await Promise.race([closed.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 2000))])
  if (!r) ws.terminate()
}

// ---------------------------------------------------------------------------
// JWTs (JWS compact serialisation), signed with node:crypto

export const b64u = (x) => Buffer.from(typeof x === 'string' ? x : x).toString('base64url')
const enc = (obj) => b64u(JSON.stringify(obj))

/**
 * @param {object} claims
 * @param {{ alg?: 'HS256'|'ES256'|'none', key?: string|Buffer|crypto.KeyObject, header?: object, dsaEncoding?: string }} o
 */
export function signJwt (claims, { alg = 'HS256', key, header = {}, dsaEncoding = 'ieee-p1363' } = {}) {
  const input = `${enc({ alg, typ: 'JWT', ...header })}.${enc(claims)}`
  let sig
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest()
  // JWS (RFC 7518 §3.4): ES256 signatures are R || S, 64 bytes, not DER
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding })
  else if (alg === 'none') sig = Buffer.alloc(0)
  else throw new Error(`signJwt: alg ${alg} not supported here`)
  return `${input}.${b64u(sig)}`
}

/** the token with its payload replaced (header and signature kept) */
export function withPayload (token, claims) {
  const [h, , s] = token.split('.')
  return `${h}.${enc(claims)}.${s}`
}

export const nowSec = () => Math.floor(Date.now() / 1000)

/** a fresh random HS256 secret: 64 hex characters (plain Caddyfile token) */
export const hsSecret = () => crypto.randomBytes(32).toString('hex')

// ---------------------------------------------------------------------------
// caddy CLI

/** runs the caddy binary (WIREDB_CADDY_BIN) with args; bounded; resolves {code, stdout, stderr} */
export function caddyCli (args, { timeout = 20000, cwd } = {}) {
  const bin = process.env.WIREDB_CADDY_BIN
  if (!bin) throw new Error('WIREDB_CADDY_BIN is not set')
  return new Promise((resolve, reject) => {
    execFile(path.resolve(bin), args, { timeout, killSignal: 'SIGKILL', cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && err.killed) return reject(new Error(`caddy ${args.join(' ')} timed out after ${timeout} ms`))
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

/** a bcrypt hash of `plaintext` made by `caddy hash-password` */
export async function bcryptHash (plaintext, cost = 10) {
  const r = await caddyCli(['hash-password', '--algorithm', 'bcrypt', '--bcrypt-cost', String(cost), '--plaintext', plaintext])
  const hash = r.stdout.trim()
  if (r.code !== 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) throw new Error(`caddy hash-password failed (exit ${r.code}): ${r.stdout}${r.stderr}`)
  return hash
}

// ---------------------------------------------------------------------------
// Console capture (y-websocket reports "permission denied" with console.warn)

/** captures console.warn lines until the returned stop() is called */
export function captureWarnings () {
  const orig = console.warn
  const lines = []
  console.warn = (...args) => { lines.push(args.map(String).join(' ')) }
  return { lines, stop: () => { console.warn = orig } }
}

// ---------------------------------------------------------------------------
// HTTP with a binary body (server.js's httpRequest decodes bodies as UTF-8)

/**
 * One HTTP request on a new connection (node:http: Caddy's admin refuses fetch's
 * Sec-Fetch-Mode and empty Origin). Bounded; resolves to {status, headers, body: Buffer, text, json}.
 */
export function httpBuffer (url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout }, (res) => {
      const chunks = []
      res.on('data', (d) => chunks.push(d))
      res.on('end', () => {
        const buf = Buffer.concat(chunks)
        const text = buf.toString('utf8')
        let json
        try { json = JSON.parse(text) } catch { json = undefined }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text, json })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)))
    req.on('error', (e) => reject(new Error(`${method} ${url}: ${e.message}`)))
    req.end(body)
  })
}

/**
 * What the server does with an upgraded y-websocket client once it has spoken: sends its
 * step 1 and waits (bounded) for the close. Returns {code, reason}, or null if the
 * connection stayed open. (A route that also serves Hocuspocus upgrades a request without
 * a token or a room, since a provider sends those per document later; a y-websocket
 * client is closed as soon as its first message shows its protocol.)
 */
export async function closeAfterFirstMessage (ws, timeout = 5000) {
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  ws.send(new Uint8Array([0, 0, 1, 0]), { binary: true })
  const r = await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(null), timeout))])
  if (!r) { try { ws.terminate() } catch {} }
  return r
}
