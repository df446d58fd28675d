// Pre-generates real Yjs v1 updates for cmd/wiredb-bench, so that replaying them needs no
// CRDT on the load side. Deterministic (seeded PRNG): the same parameters give the same bytes.
//
//   node gen.mjs [--out ../data] [--small] [--if-stale]
//
// Writes into --out (default bench/data):
//   keystrokes.bin / .json  per-writer keystroke streams: W writers, each its own Y.Doc and
//                           clientID typing into the shared Y.Text "text". A writer's updates
//                           reference only its own earlier items, so streams of different
//                           writers can be replayed in any interleaving. Every update inserts
//                           at least one character (a receiver identifies an update by the
//                           clock range of its structs even when a server re-encodes or
//                           merges it); some also delete (select + type over).
//   doc20k.bin / .json      one document built by 20,000 edits (one update per edit, in 4
//                           sessions = 4 clientIDs): typing, deletes, pastes, bold/italic.
//   doc20k.merged.bin       Y.mergeUpdates of that list (one update, raw bytes, no prefix)
//   fragmented.bin / .json  200 concurrent writers (synced in rounds: everyone sees
//                           everything of the rounds before; 10-60 writers edit at random
//                           places within a round, concurrently), as an update list in
//                           causal (generation) order.
//   manifest.json           generator version and parameters (bench/run.sh regenerates on change)
//
// File format of every *.bin list: updates one after the other, each as
// varUint(length) + bytes (varUint = unsigned LEB128, as in the y-websocket protocol and
// WireDB's file records). The .json index says how many, which clientIDs, the state vector
// of the whole list ({clientID: clock}) and, for streams, each writer's count and byte offset.

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import * as encoding from 'lib0/encoding'

export const GEN_VERSION = 1

const here = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const argValue = (name, def) => {
  const i = args.indexOf(name)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def
}
const outDir = path.resolve(argValue('--out', path.join(here, '..', 'data')))

export const PARAMS = {
  version: GEN_VERSION,
  yjs: '13.6.33',
  seed: 20260526,
  keystrokeWriters: 64,
  keystrokesPerWriter: 4000,
  docEdits: 20000,
  docSessions: 4,
  fragWriters: 200,
  fragUpdates: 20000
}
// --small: a set for smoke tests (a couple of seconds to generate)
if (args.includes('--small')) {
  Object.assign(PARAMS, { keystrokeWriters: 8, keystrokesPerWriter: 1000, docEdits: 2000, fragWriters: 40, fragUpdates: 2000 })
}

// --if-stale: do nothing when outDir already holds a whole set made with these parameters
if (args.includes('--if-stale')) {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(outDir, 'manifest.json'), 'utf8'))
    if (Object.entries(PARAMS).every(([k, v]) => m[k] === v)) {
      console.log(`bench data in ${outDir} is up to date`)
      process.exit(0)
    }
  } catch {}
}

const LETTERS = 'etaoinshrdlucmfwypvbgkjqxz'

function typedChar (gen) {
  const r = prng.real53(gen)
  if (r < 0.16) return ' '
  if (r < 0.175) return '\n'
  if (r < 0.19) return '.,;!?'[prng.int32(gen, 0, 4)]
  if (r < 0.2) return 'éü€ß'[prng.int32(gen, 0, 3)] // some non-ASCII (UTF-8 != UTF-16 length)
  return LETTERS[Math.min(LETTERS.length - 1, Math.floor(Math.pow(prng.real53(gen), 1.6) * LETTERS.length))]
}

function word (gen, min, max) {
  const n = prng.int32(gen, min, max)
  let s = ''
  for (let i = 0; i < n; i++) s += typedChar(gen)
  return s
}

/** distinct, deterministic 31-bit client IDs (as Yjs' own random ones: uint32 > 0) */
function clientIDs (gen, n, used = new Set()) {
  const ids = []
  while (ids.length < n) {
    const id = prng.uint32(gen, 1, 0x7fffffff)
    if (id === 0 || used.has(id)) continue
    used.add(id)
    ids.push(id)
  }
  return ids
}

class ListWriter {
  constructor () {
    this.chunks = []
    this.bytes = 0
    this.count = 0
  }

  add (u) {
    const enc = encoding.createEncoder()
    encoding.writeVarUint8Array(enc, u)
    const b = encoding.toUint8Array(enc)
    this.chunks.push(b)
    this.bytes += b.length
    this.count++
  }

  write (file) {
    fs.writeFileSync(file, Buffer.concat(this.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))))
  }
}

function stateVectorObject (doc) {
  const sv = {}
  for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(doc))) sv[client] = clock
  return sv
}

// (a) keystroke streams -----------------------------------------------------------------
function genKeystrokes () {
  const gen = prng.create(PARAMS.seed)
  const ids = clientIDs(gen, PARAMS.keystrokeWriters)
  const list = new ListWriter()
  const writers = []
  let maxBytes = 0
  for (let w = 0; w < PARAMS.keystrokeWriters; w++) {
    const doc = new Y.Doc()
    doc.clientID = ids[w]
    const text = doc.getText('text')
    const offset = list.bytes
    const first = list.count
    doc.on('update', (u) => { list.add(u); if (u.length > maxBytes) maxBytes = u.length })
    let cursor = 0
    for (let i = 0; i < PARAMS.keystrokesPerWriter; i++) {
      const r = prng.real53(gen)
      const len = text.length
      if (r < 0.85 || len < 4) {
        const c = typedChar(gen)
        text.insert(cursor, c)
        cursor += c.length
      } else if (r < 0.90) {
        const s = word(gen, 2, 12)
        text.insert(cursor, s)
        cursor += s.length
      } else if (r < 0.97) {
        // select a few characters before the cursor and type over them: one update
        const n = Math.min(cursor, prng.int32(gen, 1, 3))
        const c = typedChar(gen)
        doc.transact(() => {
          if (n > 0) text.delete(cursor - n, n)
          text.insert(cursor - n, c)
        })
        cursor += c.length - n
      } else {
        // click somewhere else in one's own text, then type
        cursor = prng.int32(gen, 0, len)
        const c = typedChar(gen)
        text.insert(cursor, c)
        cursor += c.length
      }
    }
    if (list.count - first !== PARAMS.keystrokesPerWriter) throw new Error(`writer ${w}: ${list.count - first} updates, want ${PARAMS.keystrokesPerWriter}`)
    writers.push({ client: ids[w], count: list.count - first, offset, bytes: list.bytes - offset, clock: Y.getState(doc.store, ids[w]), textLength: text.length })
    doc.destroy()
  }
  list.write(path.join(outDir, 'keystrokes.bin'))
  const index = {
    name: 'keystrokes',
    kind: 'streams',
    format: 'varUint(len) + Yjs v1 update, repeated; writers one after the other',
    count: list.count,
    bytes: list.bytes,
    maxUpdateBytes: maxBytes,
    writers
  }
  fs.writeFileSync(path.join(outDir, 'keystrokes.json'), JSON.stringify(index, null, 1) + '\n')
  return `keystrokes: ${writers.length} writers x ${PARAMS.keystrokesPerWriter} updates, ${(list.bytes / 1024 / 1024).toFixed(1)} MiB`
}

// (b) one document, 20,000 edits ------------------------------------------------------
function genDoc20k () {
  const gen = prng.create(PARAMS.seed + 1)
  const ids = clientIDs(gen, PARAMS.docSessions)
  const list = new ListWriter()
  const updates = []
  let state = null
  let doc = null
  let cursor = 0
  const perSession = Math.ceil(PARAMS.docEdits / PARAMS.docSessions)
  let edits = 0
  for (let s = 0; s < PARAMS.docSessions; s++) {
    // a new session: the document is opened again (a new clientID), from the stored state
    if (doc) doc.destroy()
    doc = new Y.Doc()
    doc.clientID = ids[s]
    if (state) Y.applyUpdate(doc, state)
    const text = doc.getText('text')
    doc.on('update', (u) => { list.add(u); updates.push(u) })
    cursor = Math.min(cursor, text.length)
    for (let i = 0; i < perSession && edits < PARAMS.docEdits; i++, edits++) {
      const before = list.count
      const len = text.length
      const r = prng.real53(gen)
      if (r < 0.70 || len < 30) {
        const c = typedChar(gen)
        text.insert(cursor, c)
        cursor += c.length
      } else if (r < 0.80) {
        // backspace, or select and delete a range
        const n = Math.min(cursor, prng.real53(gen) < 0.8 ? 1 : prng.int32(gen, 2, 20))
        if (n > 0) { text.delete(cursor - n, n); cursor -= n } else { text.insert(cursor, 'x'); cursor++ }
      } else if (r < 0.88) {
        // bold / italic / un-bold a range
        const a = prng.int32(gen, 0, len - 2)
        const n = Math.min(len - a, prng.int32(gen, 1, 40))
        const attr = prng.real53(gen) < 0.5 ? 'bold' : 'italic'
        text.format(a, n, { [attr]: prng.real53(gen) < 0.8 ? true : null })
      } else if (r < 0.93) {
        const s2 = word(gen, 10, 200)
        text.insert(cursor, s2, prng.real53(gen) < 0.3 ? { bold: true } : undefined)
        cursor += s2.length
      } else {
        cursor = prng.int32(gen, 0, len)
        const c = typedChar(gen)
        text.insert(cursor, c)
        cursor += c.length
      }
      if (list.count === before) {
        // a format that changed nothing: make the edit a keystroke instead
        text.insert(cursor, 'y')
        cursor++
      }
      if (list.count !== before + 1) throw new Error(`doc20k: edit ${edits} made ${list.count - before} updates`)
    }
    state = Y.encodeStateAsUpdate(doc)
  }
  const sv = stateVectorObject(doc)
  const textLength = doc.getText('text').length
  doc.destroy()
  const merged = Y.mergeUpdates(updates)
  // check: the list and the merged update give the same document
  const a = new Y.Doc(); updates.forEach((u) => Y.applyUpdate(a, u))
  const b = new Y.Doc(); Y.applyUpdate(b, merged)
  if (a.getText('text').toString() !== b.getText('text').toString()) throw new Error('doc20k: merged update differs from the list')
  list.write(path.join(outDir, 'doc20k.bin'))
  fs.writeFileSync(path.join(outDir, 'doc20k.merged.bin'), merged)
  const index = {
    name: 'doc20k',
    kind: 'list',
    format: 'varUint(len) + Yjs v1 update, repeated, in causal order',
    count: list.count,
    bytes: list.bytes,
    merged: 'doc20k.merged.bin',
    mergedBytes: merged.length,
    stateAsUpdateBytes: Y.encodeStateAsUpdate(a).length,
    textLength,
    clients: ids,
    stateVector: sv
  }
  a.destroy(); b.destroy()
  fs.writeFileSync(path.join(outDir, 'doc20k.json'), JSON.stringify(index, null, 1) + '\n')
  return `doc20k: ${list.count} updates, ${(list.bytes / 1024).toFixed(0)} KiB as a list, ${(merged.length / 1024).toFixed(0)} KiB merged, ${textLength} characters`
}

// (c) fragmented: 200 concurrent writers -----------------------------------------------
function genFragmented () {
  const gen = prng.create(PARAMS.seed + 2)
  const ids = clientIDs(gen, PARAMS.fragWriters)
  const list = new ListWriter()
  // Each round, a random subset of the writers edits concurrently, each on its own view:
  // everything of the rounds before plus its own edits of this round. A view is a replica
  // Y.Doc; a writer borrows one for the round (doc.clientID set to the writer's ID while it
  // edits). Replicas catch up lazily, when borrowed: the merged updates of the rounds they
  // missed, in one transaction. This is the same as 200 replicas synced at the end of every
  // round, at a third of the cost.
  const MAX_ACTIVE = 60
  const idle = (r) => 0x7fffff00 + r // never a writer's ID (those are < 2^31 - 256 here)
  if (ids.some((id) => id >= 0x7fffff00)) throw new Error('fragmented: client ID collides with an idle ID')
  const docs = []
  for (let r = 0; r < MAX_ACTIVE; r++) { const d = new Y.Doc(); d.clientID = idle(r); docs.push(d) }
  const rounds = [] // merged update of each finished round
  const synced = docs.map(() => 0) // rounds applied to each replica
  const catchUp = (i) => {
    const d = docs[i]
    if (synced[i] === rounds.length) return
    Y.transact(d, () => { for (let r = synced[i]; r < rounds.length; r++) Y.applyUpdate(d, rounds[r]) })
    synced[i] = rounds.length
  }
  let round = 0
  while (list.count < PARAMS.fragUpdates) {
    round++
    const roundUpdates = []
    const replicaOf = new Map() // writer -> replica, this round
    const active = prng.int32(gen, 10, MAX_ACTIVE)
    for (let k = 0; k < active && list.count < PARAMS.fragUpdates; k++) {
      const writer = ids[prng.int32(gen, 0, ids.length - 1)]
      let ri = replicaOf.get(writer)
      if (ri === undefined) { ri = replicaOf.size; replicaOf.set(writer, ri); catchUp(ri) }
      const d = docs[ri]
      d.clientID = writer
      const text = d.getText('text')
      const edits = prng.int32(gen, 1, 3)
      for (let e = 0; e < edits && list.count < PARAMS.fragUpdates; e++) {
        const len = text.length
        const p = prng.int32(gen, 0, len)
        let u = null
        const capture = (x) => { u = x }
        d.once('update', capture)
        if (len > 20 && prng.real53(gen) < 0.25) {
          const n = Math.min(len - p, prng.int32(gen, 1, 8))
          if (n > 0) text.delete(p, n)
          else text.insert(p, word(gen, 1, 6))
        } else {
          text.insert(p, word(gen, 1, 6))
        }
        if (u === null) { d.off('update', capture); continue }
        list.add(u)
        roundUpdates.push(u)
      }
      d.clientID = idle(ri)
    }
    if (roundUpdates.length > 0) rounds.push(Y.mergeUpdates(roundUpdates))
  }
  docs.forEach((_, i) => catchUp(i))
  const ref = docs[0]
  const s0 = ref.getText('text').toString()
  for (const d of docs) if (d.getText('text').toString() !== s0) throw new Error('fragmented: writers diverged')
  const sv = stateVectorObject(ref)
  for (let r = 0; r < MAX_ACTIVE; r++) delete sv[idle(r)]
  if (Object.keys(sv).length !== ids.length) throw new Error(`fragmented: ${Object.keys(sv).length} clients wrote, want ${ids.length}`)
  const merged = Y.encodeStateAsUpdate(ref)
  list.write(path.join(outDir, 'fragmented.bin'))
  const index = {
    name: 'fragmented',
    kind: 'list',
    format: 'varUint(len) + Yjs v1 update, repeated, in causal order',
    count: list.count,
    bytes: list.bytes,
    rounds: round,
    stateAsUpdateBytes: merged.length,
    textLength: s0.length,
    clients: ids,
    stateVector: sv
  }
  docs.forEach((d) => d.destroy())
  fs.writeFileSync(path.join(outDir, 'fragmented.json'), JSON.stringify(index, null, 1) + '\n')
  return `fragmented: ${list.count} updates by ${ids.length} writers in ${round} rounds, ${(list.bytes / 1024).toFixed(0)} KiB as a list, ${(merged.length / 1024).toFixed(0)} KiB as one update, ${s0.length} characters`
}

fs.mkdirSync(outDir, { recursive: true })
fs.rmSync(path.join(outDir, 'manifest.json'), { force: true })
const t0 = Date.now()
for (const step of [genKeystrokes, genDoc20k, genFragmented]) {
  const t = Date.now()
  const what = step()
  console.log(`${what} (${((Date.now() - t) / 1000).toFixed(1)} s)`)
}
// written last: its presence says the set is whole
fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({ ...PARAMS, generatedAt: new Date().toISOString() }, null, 1) + '\n')
console.log(`bench data in ${outDir} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
