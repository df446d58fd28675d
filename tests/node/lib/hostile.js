// Helpers of the hostile-input suite (test/hostile.test.mjs):
//  - a byte builder for hand-made (and deliberately wrong) y-websocket messages and Yjs v1
//    updates, with varUints of any size (BigInt, so 2^40 or 2^64-1 are exact);
//  - the close codes the server's contract expects for a random frame (garbage);
//  - a WebSocket client on a raw TCP socket (hand-made upgrade, hand-made masked frames), for
//    frames the `ws` package will not send (a header announcing 1 TiB);
//  - checks on the server process (PID alive, accepting connections, peak memory) and on
//    room files (bytes before/after, percent-encoded names).
//
// Everything here is bounded in time and talks to 127.0.0.1 only.

import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import * as Y from 'yjs'
import { decodeMessage } from './raw.js'
import { parseWireFile } from './wirefile.js'

// ---------------------------------------------------------------------------
// Bytes

/** unsigned LEB128 of any non-negative integer (number or BigInt), as lib0 writeVarUint would write it */
export function vu (n) {
  let v = BigInt(n)
  if (v < 0n) throw new Error(`vu: negative ${n}`)
  const out = []
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return Uint8Array.from(out)
}

/**
 * Concatenates parts: a number is one byte (0..255), a string is its UTF-8 bytes, arrays and
 * typed arrays are copied.
 */
export function cat (...parts) {
  const bufs = parts.map((p) => {
    if (typeof p === 'number') {
      if (!Number.isInteger(p) || p < 0 || p > 255) throw new Error(`cat: ${p} is not a byte`)
      return Buffer.from([p])
    }
    if (typeof p === 'string') return Buffer.from(p, 'utf8')
    if (p instanceof Uint8Array) return Buffer.from(p.buffer, p.byteOffset, p.byteLength)
    if (Array.isArray(p)) return Buffer.from(p)
    throw new Error(`cat: unsupported part ${typeof p}`)
  })
  return new Uint8Array(Buffer.concat(bufs))
}

/** `times` copies of the bytes of part */
export function repeat (part, times) {
  const one = cat(part)
  const out = new Uint8Array(one.length * times)
  for (let i = 0; i < times; i++) out.set(one, i * one.length)
  return out
}

/** lib0 writeVarString: UTF-8 length, then the bytes */
export const vstr = (s) => { const b = Buffer.from(s, 'utf8'); return cat(vu(b.length), b) }
/** lib0 writeVarUint8Array: length, then the bytes */
export const vbytes = (u8) => cat(vu(u8.length), u8)

/** y-websocket message envelopes around any payload bytes (length prefix = the payload's real length) */
export const wire = {
  step1: (sv) => cat(0, 0, vbytes(sv)),
  step2: (update) => cat(0, 1, vbytes(update)),
  update: (update) => cat(0, 2, vbytes(update)),
  awareness: (payload) => cat(1, vbytes(payload)),
  queryAwareness: () => cat(3)
}

/** a state vector payload: entries [client, clock] (numbers or BigInts) */
export const stateVector = (entries) => cat(vu(entries.length), ...entries.flatMap(([c, k]) => [vu(c), vu(k)]))

/** an awareness update payload from entries {clientID, clock, stateText} (stateText sent as is) */
export const awarenessRaw = (entries) => cat(vu(entries.length), ...entries.flatMap((e) => [vu(e.clientID), vu(e.clock), vstr(e.stateText)]))

// Yjs v1 content refs (Item info & 0x1f)
export const CONTENT = { deleted: 1, json: 2, binary: 3, string: 4, embed: 5, format: 6, type: 7, any: 8, doc: 9 }
// lib0 writeAny tags
export const ANY = { undefined: 127, null: 126, integer: 125, float32: 124, float64: 123, bigint: 122, false: 121, true: 120, string: 119, object: 118, array: 117, uint8array: 116 }

/**
 * A Yjs v1 update holding exactly one Item: one client, one struct, no origins, parent = the
 * root type `parent`, content ref `contentRef` followed by the raw bytes `content`, and an
 * empty delete set. With honest content bytes, Yjs applies it (see selfCheck()).
 */
export function itemUpdate ({ client = 4242, clock = 0, contentRef, content, parent = 'text', deleteSet = cat(0) }) {
  return cat(
    1, // clients with structs
    1, vu(client), vu(clock), // structs of this client, client, first clock
    contentRef, // info: content ref, no origin/rightOrigin/parentSub
    1, vstr(parent), // parent is a root type named `parent`
    content,
    deleteSet
  )
}

/** the bytes of a nesting `depth` deep as an Any value: [[[...null...]]] or {"a":{"a":...null}} */
export function deepAny (depth, kind = 'array') {
  const open = kind === 'array' ? cat(ANY.array, 1) : cat(ANY.object, 1, vstr('a'))
  return cat(repeat(open, depth), ANY.null)
}

/** JSON text nesting `depth` levels: arrays [[[...]]], or objects {"a":{"a":...{}}} */
export function deepJSON (depth, kind = 'array') {
  if (kind === 'array') return '['.repeat(depth) + ']'.repeat(depth)
  return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1)
}

/**
 * Keeps the builders honest: honest inputs built with them must be read by Yjs as intended,
 * so that a hostile variant differs from a valid message only by what the test changes.
 * Throws on the first mismatch.
 */
export function selfCheck () {
  const applied = (u) => { const d = new Y.Doc(); Y.applyUpdate(d, u); return d }
  let d = applied(itemUpdate({ contentRef: CONTENT.string, content: vstr('hello') }))
  if (d.getText('text').toString() !== 'hello') throw new Error('selfCheck: string item')
  d = applied(itemUpdate({ contentRef: CONTENT.any, content: cat(vu(1), deepAny(3)), parent: 'array' }))
  if (JSON.stringify(d.getArray('array').toJSON()) !== '[[[[null]]]]') throw new Error(`selfCheck: any item ${JSON.stringify(d.getArray('array').toJSON())}`)
  d = applied(itemUpdate({ contentRef: CONTENT.any, content: cat(vu(1), deepAny(2, 'object')), parent: 'array' }))
  if (JSON.stringify(d.getArray('array').toJSON()) !== '[{"a":{"a":null}}]') throw new Error('selfCheck: any object item')
  d = applied(itemUpdate({ contentRef: CONTENT.json, content: cat(vu(1), vstr(deepJSON(3))), parent: 'array' }))
  if (JSON.stringify(d.getArray('array').toJSON()) !== '[[[[]]]]') throw new Error('selfCheck: json item')
  d = applied(itemUpdate({ contentRef: CONTENT.embed, content: vstr(deepJSON(3, 'object')) }))
  if (JSON.stringify(d.getText('text').toDelta()) !== '[{"insert":{"a":{"a":{}}}}]') throw new Error(`selfCheck: embed item ${JSON.stringify(d.getText('text').toDelta())}`)
  const sv = Y.decodeStateVector(stateVector([[2 ** 53 - 1, 5], [7, 300]]))
  if (sv.get(2 ** 53 - 1) !== 5 || sv.get(7) !== 300) throw new Error('selfCheck: state vector')
  if (Buffer.compare(Buffer.from(vu(2n ** 40n)), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x20])) !== 0) throw new Error('selfCheck: vu(2^40)')
  return true
}

// ---------------------------------------------------------------------------
// What the contract expects for a random frame

const TWO53 = 2n ** 53n

function readVU (buf, pos) {
  let v = 0n
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) return { err: 'truncated varUint' }
    const c = buf[pos + i]
    if (i === 9 && c > 1) return { err: 'varUint overflows 64 bits' }
    v |= BigInt(c & 0x7f) << BigInt(7 * i)
    if (c < 0x80) return { v, pos: pos + i + 1 }
  }
  return { err: 'truncated varUint' }
}

/** true if the bytes are a state vector that Yjs would read, with safe integers, exactly */
function isValidStateVector (p) {
  let r = readVU(p, 0)
  if (r.err) return false
  let pos = r.pos
  for (let i = 0n; i < r.v; i++) {
    const c = readVU(p, pos); if (c.err || c.v >= TWO53) return false
    const k = readVU(p, c.pos); if (k.err || k.v >= TWO53) return false
    pos = k.pos
  }
  return pos === p.length
}

/** true if the bytes are an awareness update that y-protocols would read without throwing */
function isValidAwareness (p) {
  const r = readVU(p, 0)
  if (r.err) return false
  let pos = r.pos
  for (let i = 0n; i < r.v; i++) {
    const c = readVU(p, pos); if (c.err || c.v >= TWO53) return false
    const k = readVU(p, c.pos); if (k.err || k.v >= TWO53) return false
    const l = readVU(p, k.pos); if (l.err || l.v > BigInt(p.length)) return false
    const end = l.pos + Number(l.v)
    if (end > p.length) return false
    try {
      const s = JSON.parse(Buffer.from(p.subarray(l.pos, end)).toString('utf8'))
      if (s !== null && (typeof s !== 'object' || Array.isArray(s))) return false
    } catch { return false }
    pos = end
  }
  return pos === p.length
}

/** true unless Yjs refuses the bytes as an update (a copy: lib0 must not read past the end) */
function yjsMightAccept (p) {
  try { Y.decodeUpdate(Uint8Array.from(p)); return true } catch { return false }
}

/**
 * The close codes the server's contract allows for one binary frame, read the way
 * y-protocols reads it: the first varUint is the message type (unknown: 1003), a message
 * that cannot be read or whose payload is invalid: 1007.
 * @returns {{ codes: number[], why: string } | { valid: true, why: string }} valid: the
 *   frame might be a correct message (a generator should draw another one)
 */
export function expectedForFrame (f) {
  const t = readVU(f, 0)
  if (t.err) return { codes: [1007], why: `message type: ${t.err}` }
  if (t.v >= TWO53) return { codes: [1003, 1007], why: `message type ${t.v} (not a safe integer: unknown or out of range)` }
  const envelope = (pos, what) => {
    const l = readVU(f, pos)
    if (l.err) return { codes: [1007], why: `${what} length: ${l.err}` }
    const left = BigInt(f.length - l.pos)
    if (l.v !== left) return { codes: [1007], why: `${what} length ${l.v} but ${left} bytes left` }
    return { payload: f.subarray(l.pos) }
  }
  const sub = (name, known) => {
    const s = readVU(f, t.pos)
    if (s.err) return { codes: [1007], why: `${name} type: ${s.err}` }
    if (s.v >= TWO53) return { codes: [1003, 1007], why: `${name} type ${s.v} (not a safe integer)` }
    if (!known.includes(Number(s.v))) return { codes: [1003], why: `unknown ${name} type ${s.v}` }
    return { s: Number(s.v), pos: s.pos }
  }
  switch (Number(t.v)) {
    case 0: {
      const s = sub('sync', [0, 1, 2]); if (s.codes) return s
      const what = s.s === 0 ? 'state vector' : 'update'
      const e = envelope(s.pos, what); if (e.codes) return e
      if (s.s === 0 ? isValidStateVector(e.payload) : yjsMightAccept(e.payload)) return { valid: true, why: `might be a valid ${what}` }
      return { codes: [1007], why: `invalid ${what}` }
    }
    case 1: {
      const e = envelope(t.pos, 'awareness update'); if (e.codes) return e
      if (isValidAwareness(e.payload)) return { valid: true, why: 'valid awareness update' }
      return { codes: [1007], why: 'invalid awareness update' }
    }
    case 2: {
      const s = sub('auth', [0]); if (s.codes) return s
      const e = envelope(s.pos, 'auth reason'); if (e.codes) return e
      return { valid: true, why: 'well-formed auth message' }
    }
    case 3:
      if (t.pos === f.length) return { valid: true, why: 'query awareness' }
      return { codes: [1007], why: `${f.length - t.pos} trailing bytes after query awareness` }
    default:
      return { codes: [1003], why: `unknown message type ${t.v}` }
  }
}

// ---------------------------------------------------------------------------
// A WebSocket client on a raw TCP socket

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** a masked client frame header (RFC 6455 §5.2); length may be a BigInt up to 2^63-1 */
export function clientFrameHeader ({ fin = true, opcode = 2, length, maskKey }) {
  const len = BigInt(length)
  const parts = [(fin ? 0x80 : 0) | opcode]
  if (len < 126n) parts.push(0x80 | Number(len))
  else if (len < 65536n) parts.push(0x80 | 126, Number(len >> 8n), Number(len & 0xffn))
  else {
    parts.push(0x80 | 127)
    for (let i = 7; i >= 0; i--) parts.push(Number((len >> BigInt(8 * i)) & 0xffn))
  }
  return cat(parts, maskKey)
}

/** XORs payload bytes with the mask key, starting at payload offset `offset` */
export function maskBytes (payload, maskKey, offset = 0) {
  const out = new Uint8Array(payload.length)
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ maskKey[(offset + i) % 4]
  return out
}

/**
 * Opens a TCP connection, does the WebSocket upgrade by hand, and parses the server's
 * (unmasked) frames: data messages decoded as y-websocket messages, pings, and the close
 * frame (code and reason). Nothing is answered automatically.
 */
export class RawTcpWs {
  constructor (port, urlPath) {
    this.port = port
    this.urlPath = urlPath
    this.messages = []
    this.pings = 0
    this.close = null // {code, reason, at}
    this.ended = null // {at, hadError}
    this.error = null
    this._buf = Buffer.alloc(0)
    this._upgraded = false
    this._waiters = new Set()
  }

  _notify () { for (const w of [...this._waiters]) w() }

  /** resolves when cond() is truthy (checked on every event); rejects after timeout with message */
  _wait (cond, timeout, message) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = cond()
        if (v) { clearTimeout(timer); this._waiters.delete(check); resolve(v) }
      }
      const timer = setTimeout(() => {
        this._waiters.delete(check)
        reject(new Error(`${message}: nothing within ${timeout} ms (close=${JSON.stringify(this.close)} ended=${JSON.stringify(this.ended)} error=${this.error && this.error.message} messages=${JSON.stringify(this.messages.map((m) => m.type + (m.sub ? '/' + m.sub : '')))})`))
      }, timeout)
      this._waiters.add(check)
      check()
    })
  }

  async open ({ timeout = 5000 } = {}) {
    const key = crypto.randomBytes(16).toString('base64')
    const accept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64')
    this.sock = net.connect({ host: '127.0.0.1', port: this.port })
    this.sock.on('error', (e) => { this.error = e; this._notify() })
    this.sock.on('close', (hadError) => { this.ended = { at: Date.now(), hadError }; this._notify() })
    this.sock.on('data', (d) => { this._onData(d); this._notify() })
    this.sock.on('connect', () => {
      this.sock.write(`GET ${this.urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${this.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`)
    })
    try {
      await this._wait(() => this._upgraded || this.ended || this._httpError, timeout, `upgrade of ${this.urlPath}`)
    } catch (e) { this.destroy(); throw e }
    if (!this._upgraded) { this.destroy(); throw new Error(`upgrade of ${this.urlPath} failed: ${this._httpError || 'connection ended'}`) }
    if (this._accept !== accept) { this.destroy(); throw new Error(`bad Sec-WebSocket-Accept ${this._accept} (want ${accept})`) }
    return this
  }

  _onData (d) {
    this._buf = Buffer.concat([this._buf, d])
    if (!this._upgraded) {
      const i = this._buf.indexOf('\r\n\r\n')
      if (i < 0) return
      const head = this._buf.subarray(0, i).toString('latin1')
      this._buf = this._buf.subarray(i + 4)
      const status = Number(head.split('\r\n')[0].split(' ')[1])
      if (status !== 101) { this._httpError = head.split('\r\n')[0]; return }
      const m = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)
      this._accept = m && m[1]
      this._upgraded = true
    }
    // server frames: never masked
    while (this._buf.length >= 2) {
      const b0 = this._buf[0]; const b1 = this._buf[1]
      let len = b1 & 0x7f; let off = 2
      if (len === 126) { if (this._buf.length < 4) return; len = this._buf.readUInt16BE(2); off = 4 } else if (len === 127) {
        if (this._buf.length < 10) return
        len = Number(this._buf.readBigUInt64BE(2)); off = 10
      }
      if (b1 & 0x80) off += 4 // (a server must not mask; tolerate it)
      if (this._buf.length < off + len) return
      const payload = Buffer.from(this._buf.subarray(off, off + len))
      this._buf = this._buf.subarray(off + len)
      const opcode = b0 & 0x0f
      if (opcode === 0x8) {
        if (!this.close) {
          this.close = payload.length >= 2
            ? { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8'), at: Date.now() }
            : { code: 1005, reason: '', at: Date.now() }
        }
      } else if (opcode === 0x9) this.pings++
      else if (opcode === 0x2) this.messages.push(decodeMessage(new Uint8Array(payload)))
      else if (opcode === 0x1) this.messages.push({ type: 'text', text: payload.toString('utf8') })
    }
  }

  write (bytes) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve(false)
      this.sock.write(Buffer.from(bytes), (err) => resolve(!err))
    })
  }

  /** sends one complete masked binary frame */
  sendBinary (payload) {
    const maskKey = crypto.randomBytes(4)
    return this.write(cat(clientFrameHeader({ opcode: 2, length: payload.length, maskKey }), maskBytes(payload, maskKey)))
  }

  waitMessage (pred, timeout = 5000, message = 'a message') {
    return this._wait(() => this.messages.find(pred), timeout, message)
  }

  /** waits for the server's close frame; returns {code, reason, at} */
  waitCloseFrame (timeout) {
    return this._wait(() => this.close, timeout, 'close frame from the server')
  }

  /** waits for the TCP connection to end */
  waitEnded (timeout) {
    return this._wait(() => this.ended, timeout, 'end of the TCP connection')
  }

  destroy () { try { this.sock.destroy() } catch {} }
}

// ---------------------------------------------------------------------------
// The server process and its files

/** WireDB file name of a room key (storage.FileName for keys short enough not to be hashed) */
export function roomFileOf (dataDir, key) {
  const enc = Array.from(Buffer.from(key, 'utf8')).map((c) => {
    const ch = String.fromCharCode(c)
    return /[A-Za-z0-9._-]/.test(ch) ? ch : '%' + c.toString(16).toUpperCase().padStart(2, '0')
  }).join('')
  if (enc.length > 120) throw new Error(`roomFileOf: key ${key} is too long (its file name is hashed)`)
  return path.join(dataDir, enc + '.y')
}

/** bytes of a file, or null if it does not exist */
export function readOrNull (file) {
  try { return fs.readFileSync(file) } catch (e) { if (e.code === 'ENOENT') return null; throw e }
}

/** describes a room file for messages: size, records, torn bytes */
export function describeFile (bytes) {
  if (bytes === null) return 'absent'
  try {
    const p = parseWireFile(bytes)
    return `${bytes.length} bytes, ${p.records.length} records (sizes ${p.records.map((r) => r.length).join(',')}), torn ${p.torn}`
  } catch (e) { return `${bytes.length} bytes, unreadable: ${e.message}` }
}

/** VmHWM (peak resident memory) of a process in bytes, or null where /proc is not there */
export function peakRss (pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch { return null }
}

/** true if a process with this PID exists (signal 0 checks without sending anything) */
export function pidAlive (pid) {
  try { process.kill(pid, 0); return true } catch (e) { return e.code === 'EPERM' }
}
