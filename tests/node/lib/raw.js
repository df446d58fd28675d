// A raw y-websocket connection: sends arbitrary frames (binary or text) and
// records every message and the close code/reason the server answers with.

import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { waitFor } from './clients.js'

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

const build = (f) => { const e = encoding.createEncoder(); f(e); return encoding.toUint8Array(e) }

export const msgSyncStep1 = (sv) => build((e) => { encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_STEP1); encoding.writeVarUint8Array(e, sv) })
export const msgSyncStep2 = (update) => build((e) => { encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_STEP2); encoding.writeVarUint8Array(e, update) })
export const msgUpdate = (update) => build((e) => { encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_UPDATE); encoding.writeVarUint8Array(e, update) })
export const msgAwareness = (awarenessUpdate) => build((e) => { encoding.writeVarUint(e, MSG_AWARENESS); encoding.writeVarUint8Array(e, awarenessUpdate) })
export const msgQueryAwareness = () => build((e) => { encoding.writeVarUint(e, MSG_QUERY_AWARENESS) })

/**
 * An awareness update payload: entries of {clientID, clock, state} (state null = removed)
 * @param {Array<{clientID:number, clock:number, state:any}>} entries
 */
export const awarenessPayload = (entries) => build((e) => {
  encoding.writeVarUint(e, entries.length)
  for (const { clientID, clock, state } of entries) {
    encoding.writeVarUint(e, clientID)
    encoding.writeVarUint(e, clock)
    encoding.writeVarString(e, JSON.stringify(state))
  }
})

export function decodeAwarenessPayload (u8) {
  const d = decoding.createDecoder(u8)
  const n = decoding.readVarUint(d)
  const out = []
  for (let i = 0; i < n; i++) {
    const clientID = decoding.readVarUint(d)
    const clock = decoding.readVarUint(d)
    const state = JSON.parse(decoding.readVarString(d))
    out.push({ clientID, clock, state })
  }
  return out
}

/** Decodes one server message into {type, sub?, payload?, raw}; never throws. */
export function decodeMessage (u8) {
  try {
    const d = decoding.createDecoder(u8)
    const t = decoding.readVarUint(d)
    if (t === MSG_SYNC) {
      const s = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      return { type: 'sync', sub: ['step1', 'step2', 'update'][s] || `sync-${s}`, payload, raw: u8 }
    }
    if (t === MSG_AWARENESS) return { type: 'awareness', payload: decodeAwarenessPayload(decoding.readVarUint8Array(d)), raw: u8 }
    if (t === MSG_AUTH) {
      const s = decoding.readVarUint(d)
      return { type: 'auth', sub: s === 0 ? 'permission-denied' : `auth-${s}`, reason: s === 0 ? decoding.readVarString(d) : undefined, raw: u8 }
    }
    if (t === MSG_QUERY_AWARENESS) return { type: 'query-awareness', raw: u8 }
    return { type: `unknown-${t}`, raw: u8 }
  } catch (e) {
    return { type: 'undecodable', error: e.message, raw: u8 }
  }
}

export class RawConn {
  constructor (url) {
    this.url = url
    /** decoded messages received, in order (text frames as {type:'text'}) */
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
      if (!isBinary) this.messages.push({ type: 'text', text: data.toString() })
      else this.messages.push(decodeMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)))
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.close = { code, reason: reason.toString(), at: Date.now() }
        resolve(this.close)
      })
    })
  }

  /** sends a binary frame (Uint8Array/Buffer) or a text frame (string) */
  send (data) {
    return new Promise((resolve, reject) => {
      const binary = typeof data !== 'string'
      this.ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()))
    })
  }

  /** waits (bounded) for a message matching pred; returns it */
  async waitMessage (pred, { timeout = 5000, message = 'a message' } = {}) {
    return await waitFor(() => this.messages.find(pred), {
      timeout,
      message,
      describe: () => `received: ${JSON.stringify(this.messages.map((m) => m.type + (m.sub ? '/' + m.sub : '')))} close=${JSON.stringify(this.close)}`
    })
  }

  /** waits (bounded) for the server to close; returns {code, reason} or throws */
  async waitClose (timeout = 5000) {
    const t = new Promise((resolve) => setTimeout(() => resolve(null), timeout))
    const r = await Promise.race([this.closed, t])
    if (!r) throw new Error(`server did not close the connection within ${timeout} ms (readyState ${this.ws.readyState})`)
    return r
  }

  /** closes from our side (bounded) */
  async end () {
    if (this.close) return
    try { this.ws.close(1000, 'test done') } catch {}
    const t = new Promise((resolve) => setTimeout(() => resolve(null), 2000))
    const r = await Promise.race([this.closed, t])
    if (!r) this.ws.terminate()
  }
}

/**
 * Opens a raw connection and waits (bounded) until it is open. With `hello`, it then sends
 * an empty step 1, as every y-websocket client does first: the server greets a connection
 * (its step 1, the room's awareness) only once its first message has shown its protocol.
 */
export async function openRaw (url, { timeout = 5000, hello = false } = {}) {
  const c = new RawConn(url)
  const t = new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`raw connection to ${url} did not open within ${timeout} ms`)), timeout))
  try {
    await Promise.race([c.opened, t])
  } catch (e) {
    c.ws.terminate()
    throw e
  }
  if (hello) await c.send(msgSyncStep1(new Uint8Array([0])))
  return c
}

/**
 * Sends a hand-written WebSocket upgrade request for `rawPath` (sent byte for
 * byte, so no client-side URL normalisation) and returns the HTTP status.
 * @returns {Promise<{status: number, statusLine: string}>}
 */
export async function rawUpgrade (port, rawPath, { timeout = 5000 } = {}) {
  const net = await import('node:net')
  return await new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    let buf = ''
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no HTTP response for ${rawPath} within ${timeout} ms`)) }, timeout)
    sock.on('connect', () => {
      sock.write(`GET ${rawPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    })
    sock.on('data', (d) => {
      buf += d.toString('latin1')
      const i = buf.indexOf('\r\n')
      if (i >= 0) {
        clearTimeout(timer)
        const statusLine = buf.slice(0, i)
        sock.destroy()
        resolve({ status: Number(statusLine.split(' ')[1]), statusLine })
      }
    })
    sock.on('error', (e) => { clearTimeout(timer); reject(e) })
  })
}
