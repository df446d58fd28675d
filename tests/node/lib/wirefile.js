// Reads WireDB's room file format (DESIGN §5) with Yjs, independently of the server:
//   file   := "0.0.1" 0x00 record*
//   record := varUint(len(update)) update        ; a Yjs v1 update
import fs from 'node:fs'
import path from 'node:path'
import * as decoding from 'lib0/decoding'
import * as Y from 'yjs'

export const HEADER = Buffer.from('0.0.1\u0000', 'latin1')

/** file of a room whose key is made of [A-Za-z0-9._-] only (encoded as itself) */
export function roomFile (dataDir, room) {
  if (!/^[A-Za-z0-9._-]+$/.test(room)) throw new Error(`roomFile: key ${room} would be percent-encoded; use a plain key`)
  return path.join(dataDir, `${room}.y`)
}

/**
 * Parses a room file. A torn last record (too few bytes left) is reported, not thrown.
 * @returns {{ header: string, records: Uint8Array[], torn: number, size: number }}
 */
export function parseWireFile (bytes) {
  const buf = Buffer.from(bytes)
  if (buf.length < HEADER.length || !buf.subarray(0, HEADER.length).equals(HEADER)) {
    throw new Error(`bad header: ${JSON.stringify(buf.subarray(0, 8).toString('latin1'))}`)
  }
  const u8 = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  const dec = decoding.createDecoder(u8.subarray(HEADER.length))
  const records = []
  let torn = 0
  while (decoding.hasContent(dec)) {
    const start = dec.pos
    let len
    try { len = decoding.readVarUint(dec) } catch { torn = dec.arr.length - start; break }
    if (dec.pos + len > dec.arr.length) { torn = dec.arr.length - start; break }
    records.push(dec.arr.subarray(dec.pos, dec.pos + len))
    dec.pos += len
  }
  return { header: '0.0.1', records, torn, size: buf.length }
}

export function readWireFile (file) {
  return parseWireFile(fs.readFileSync(file))
}

/** a fresh Y.Doc with every record of the file applied (throws if Yjs rejects one) */
export function docFromWireFile (file) {
  const { records } = readWireFile(file)
  const doc = new Y.Doc()
  for (const r of records) Y.applyUpdate(doc, r)
  if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) {
    throw new Error(`${file}: records leave updates pending (missing dependencies): ${records.length} records`)
  }
  return doc
}
