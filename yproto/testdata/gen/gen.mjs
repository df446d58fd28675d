// Generates the Yjs / y-protocols test vectors used by package yproto.
//
//   cd yproto/testdata/gen && npm ci && node gen.mjs
//
// Output (committed, so `go test` never needs Node):
//   ../vectors/yjs.json          updates, state vectors, messages, awareness updates
//   ../vectors/large_merged.bin  a ~1 MB update merged with Y.mergeUpdates (benchmarks)
// Input: ../vectors/pycrdt_raw.json, written by gen_pycrdt.py (run that first).
//
// Everything is deterministic: client IDs are fixed and randomness comes from a seeded PRNG,
// so re-running the script reproduces the same bytes.

import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as authProtocol from 'y-protocols/auth'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as prng from 'lib0/prng'
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs'

const versionOf = (pkg) =>
  JSON.parse(readFileSync(new URL(`node_modules/${pkg}/package.json`, import.meta.url))).version
const outDir = new URL('../vectors/', import.meta.url)
mkdirSync(outDir, { recursive: true })

const hex = (u8) => Buffer.from(u8).toString('hex')

// ---------------------------------------------------------------------------------------------
// Updates

const updates = []

/**
 * Records an update together with what Yjs itself reports about it, so the Go tests can
 * compare ValidateUpdate's UpdateInfo with Yjs: parseUpdateMeta for the struct ranges,
 * decodeUpdate for the delete set and for the presence of Skip structs.
 */
const addUpdate = (name, update, note = '') => {
  const meta = Y.parseUpdateMeta(update)
  const structs = []
  for (const [client, clock] of meta.from) {
    structs.push({ client, clock, end: meta.to.get(client) })
  }
  const decoded = Y.decodeUpdate(update)
  const deletes = []
  for (const [client, items] of decoded.ds.clients) {
    for (const item of items) deletes.push({ client, clock: item.clock, len: item.len })
  }
  const hasSkips = decoded.structs.some((s) => s instanceof Y.Skip)
  // Prove that Yjs itself accepts the update: apply it to a fresh document.
  const check = new Y.Doc()
  Y.applyUpdate(check, update)
  updates.push({ name, note, hex: hex(update), structs, deletes, hasSkips, kinds: kindsOf(decoded.structs) })
}

const contentNames = [null, 'Deleted', 'JSON', 'Binary', 'String', 'Embed', 'Format', 'Type', 'Any', 'Doc']
// subclasses first: XmlHook extends Map, XmlText extends Text, XmlElement extends XmlFragment
const typeName = (t) => [
  [Y.XmlHook, 'XmlHook'], [Y.XmlText, 'XmlText'], [Y.XmlElement, 'XmlElement'],
  [Y.XmlFragment, 'XmlFragment'], [Y.Array, 'Array'], [Y.Map, 'Map'], [Y.Text, 'Text']
].find(([cls]) => t instanceof cls)[1]

/**
 * Lists which struct kinds, content kinds, type refs and Any tags an update contains, so the
 * Go tests can check that the vectors together cover every one of them.
 */
const kindsOf = (structs) => {
  const kinds = new Set()
  const anyKind = (v) => {
    // mirrors lib0 encoding.writeAny
    switch (typeof v) {
      case 'string': kinds.add('any:string'); break
      case 'number':
        if (Number.isInteger(v) && Math.abs(v) <= 0x7fffffff) kinds.add('any:varInt')
        else if (new Float32Array([v])[0] === v) kinds.add('any:float32')
        else kinds.add('any:float64')
        break
      case 'bigint': kinds.add('any:bigint64'); break
      case 'boolean': kinds.add(v ? 'any:true' : 'any:false'); break
      case 'object':
        if (v === null) kinds.add('any:null')
        else if (Array.isArray(v)) { kinds.add('any:array'); v.forEach(anyKind) }
        else if (v instanceof Uint8Array) kinds.add('any:Uint8Array')
        else { kinds.add('any:object'); Object.values(v).forEach(anyKind) }
        break
      default: kinds.add('any:undefined')
    }
  }
  for (const s of structs) {
    if (s instanceof Y.GC) { kinds.add('struct:GC'); continue }
    if (s instanceof Y.Skip) { kinds.add('struct:Skip'); continue }
    const c = s.content
    kinds.add('content:' + contentNames[c.getRef()])
    if (c instanceof Y.ContentType) kinds.add('type:' + typeName(c.type))
    if (c instanceof Y.ContentAny) c.arr.forEach(anyKind)
    if (c instanceof Y.ContentDoc) anyKind(c.opts)
  }
  return [...kinds].sort()
}

/** Collects every update a document emits, in order. */
const recorder = (doc) => {
  const list = []
  doc.on('update', (u) => list.push(u))
  return list
}

const newDoc = (clientID, opts = {}) => {
  const doc = new Y.Doc(opts)
  doc.clientID = clientID
  return doc
}

// Empty update: what encodeStateAsUpdate of an empty document gives.
addUpdate('empty_doc', Y.encodeStateAsUpdate(new Y.Doc()), 'no structs, no deletes')

// A single keystroke: the smallest real update (also the small benchmark).
{
  const doc = newDoc(1234567)
  const rec = recorder(doc)
  doc.getText('text').insert(0, 'a')
  doc.getText('text').insert(1, 'b')
  addUpdate('text_keystroke_first', rec[0])
  addUpdate('text_keystroke_second', rec[1], 'item with origin')
}

// Text with formatting, embeds, unicode (UTF-16 lengths) and deletes.
{
  const doc = newDoc(42)
  const rec = recorder(doc)
  const text = doc.getText('text')
  text.insert(0, 'Hello, World! ')
  text.insert(14, 'bold', { bold: true })
  text.insert(18, ' italic+link', { italic: true, link: { href: 'https://example.com', title: 'ñ' } })
  text.format(0, 5, { color: '#ff0000', size: 12.5 })
  text.format(0, 2, { color: null })
  text.insertEmbed(3, { image: 'https://example.com/a.png', width: 100 })
  text.insertEmbed(5, new Y.Map())
  text.insert(text.length, 'emoji 😀👩‍👩‍👧 flags 🇫🇷 astral 𝄞 mixed ñé中文')
  text.delete(1, 3)
  text.insert(text.length, 'lone \ud800 surrogate')
  rec.forEach((u, i) => addUpdate(`text_rich_step${i}`, u))
  addUpdate('text_rich_state', Y.encodeStateAsUpdate(doc), 'full state: format, embed, deletes')
}

// Map with every kind of Any value and nested shared types.
{
  const doc = newDoc(2 ** 31 + 7) // client id above 2^31
  const rec = recorder(doc)
  const map = doc.getMap('map')
  let deep = { leaf: true }
  for (let i = 0; i < 60; i++) deep = { level: i, child: deep, list: [i, [deep === null]] }
  doc.transact(() => {
    map.set('undefined', undefined)
    map.set('null', null)
    map.set('int', 42)
    map.set('neg', -1234567)
    map.set('int31', 2 ** 31 - 1)
    map.set('negint31', -(2 ** 31 - 1))
    map.set('int32', 2 ** 31 + 1) // float64 on the wire
    map.set('float32', 0.5)
    map.set('float64', 0.1)
    map.set('maxSafe', Number.MAX_SAFE_INTEGER)
    map.set('nan', NaN)
    map.set('inf', -Infinity)
    map.set('negzero', -0)
    map.set('bigint', 2n ** 62n)
    map.set('negbigint', -(2n ** 63n))
    map.set('true', true)
    map.set('false', false)
    map.set('string', 'strïng 😀')
    map.set('emptyString', '')
    map.set('object', { a: 1, b: 'two', c: [3, { d: null }], e: {}, f: [], bin: new Uint8Array([1, 2, 3]) })
    map.set('array', [1, 'x', false, null, undefined, [[]], { k: 2n }])
    map.set('binary', new Uint8Array([0, 255, 128, 7]))
    map.set('emptyBinary', new Uint8Array(0))
    map.set('deep', deep)
    map.set('unicode key ✓', 'v')
  })
  doc.transact(() => {
    const nestedMap = new Y.Map()
    map.set('nestedMap', nestedMap)
    nestedMap.set('k', 'v')
    const nestedArray = new Y.Array()
    nestedMap.set('arr', nestedArray)
    nestedArray.insert(0, [1, 2, 3])
    const nestedText = new Y.Text('nested text')
    nestedArray.push([nestedText])
    map.set('frag', new Y.XmlFragment())
  })
  map.set('int', 43) // overwrite: the old item is deleted
  map.delete('null')
  rec.forEach((u, i) => addUpdate(`map_any_step${i}`, u))
  addUpdate('map_any_state', Y.encodeStateAsUpdate(doc), 'all Any kinds, nested types, deletes, client > 2^31')
}

// Arrays: primitives, binary items (ContentBinary), nested types, range deletes.
{
  const doc = newDoc(7)
  const rec = recorder(doc)
  const arr = doc.getArray('array')
  arr.insert(0, [1, 2, 3, 'four', { five: 5 }, [6]])
  arr.insert(2, [new Uint8Array([9, 9, 9])])
  arr.push([new Y.Array(), new Y.Map(), new Y.Text('t')])
  arr.get(arr.length - 3).insert(0, ['inner'])
  arr.delete(1, 3)
  arr.unshift(['head'])
  rec.forEach((u, i) => addUpdate(`array_step${i}`, u))
  addUpdate('array_state', Y.encodeStateAsUpdate(doc))
}

// XML: fragment, elements with attributes, text with formatting, hook.
{
  const doc = newDoc(2 ** 32 + 5)
  const rec = recorder(doc)
  const frag = doc.getXmlFragment('prosemirror')
  const p = new Y.XmlElement('paragraph')
  const t = new Y.XmlText()
  frag.insert(0, [p, new Y.XmlHook('hookname')])
  p.insert(0, [t])
  p.setAttribute('align', 'center')
  p.setAttribute('data-json', { nested: [1, 2] })
  t.insert(0, 'Some text', { bold: {} })
  t.format(0, 4, { italic: true })
  const h = new Y.XmlElement('heading')
  h.setAttribute('level', '2')
  frag.insert(1, [h])
  h.insert(0, [new Y.XmlText('Title')])
  p.setAttribute('align', 'left') // overwrite an attribute of an existing element
  t.delete(0, 2)
  rec.forEach((u, i) => addUpdate(`xml_step${i}`, u))
  addUpdate('xml_state', Y.encodeStateAsUpdate(doc), 'XmlFragment/XmlElement/XmlText/XmlHook, client > 2^32')
}

// Subdocuments (ContentDoc) with options.
{
  const doc = newDoc(99)
  const rec = recorder(doc)
  const subs = doc.getMap('subdocs')
  subs.set('a', new Y.Doc({ guid: 'sub-a' }))
  subs.set('b', new Y.Doc({ guid: 'sub-b', autoLoad: true, gc: false, meta: { title: 'B', n: 1 } }))
  doc.getArray('list').push([new Y.Doc({ guid: 'sub-c', meta: 'just a string' })])
  rec.forEach((u, i) => addUpdate(`subdoc_step${i}`, u))
  addUpdate('subdoc_state', Y.encodeStateAsUpdate(doc))
}

// Garbage-collected content: a deleted nested type's children become GC structs.
{
  const doc = newDoc(5, { gc: true })
  const map = doc.getMap('m')
  const inner = new Y.Map()
  map.set('inner', inner)
  for (let i = 0; i < 5; i++) inner.set('k' + i, 'value ' + i)
  const innerText = new Y.Text('some text to collect')
  map.set('text', innerText)
  map.set('inner', 'replaced')
  map.delete('text')
  const state = Y.encodeStateAsUpdate(doc)
  addUpdate('gc_state', state, 'GC structs and ContentDeleted')
  const doc2 = newDoc(6)
  Y.applyUpdate(doc2, state)
  const rec = recorder(doc2)
  doc2.getMap('m').delete('inner')
  addUpdate('delete_only', rec[0], 'no structs, only a delete set')
}

// Deletes from several clients; diff updates against a state vector.
{
  const a = newDoc(10)
  const b = newDoc(2 ** 53 - 1) // the largest safe client id
  const ta = a.getText('t')
  ta.insert(0, 'abcdefghij')
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const tb = b.getText('t')
  tb.insert(5, 'XYZ')
  tb.delete(0, 2)
  tb.delete(6, 3)
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
  ta.insert(0, '!')
  addUpdate('two_clients_state', Y.encodeStateAsUpdate(a), 'client 2^53-1')
  addUpdate('diff_update', Y.diffUpdate(Y.encodeStateAsUpdate(a), Y.encodeStateVector(b)))
  addUpdate('state_as_update_from_sv', Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
}

// Merged updates with holes: Y.mergeUpdates writes Skip structs over the missing ranges.
{
  const doc = newDoc(3000000000)
  const rec = recorder(doc)
  const text = doc.getText('t')
  for (let i = 0; i < 6; i++) text.insert(text.length, 'chunk' + i + ' ')
  doc.getMap('m').set('x', 1)
  text.delete(2, 5)
  const other = newDoc(17)
  const orec = recorder(other)
  other.getArray('a').insert(0, [1, 2, 3])
  addUpdate('merged_with_skips', Y.mergeUpdates([rec[0], rec[2], rec[5], orec[0]]), 'Skip structs for the gaps')
  addUpdate('merged_skips_and_deletes', Y.mergeUpdates([rec[1], rec[4], rec[7], rec[6]]))
  addUpdate('merged_contiguous', Y.mergeUpdates(rec))
}

// Legacy ContentJSON (ref 2): Yjs 13 still reads it but no longer writes it, so it is built
// with Yjs's own encoder from a ContentJSON item.
{
  const encoder = new Y.UpdateEncoderV1()
  encoding.writeVarUint(encoder.restEncoder, 1) // one client
  encoding.writeVarUint(encoder.restEncoder, 1) // one struct
  encoder.writeClient(77)
  encoding.writeVarUint(encoder.restEncoder, 0) // first clock
  const item = new Y.Item(Y.createID(77, 0), null, null, null, null, 'legacy', null,
    new Y.ContentJSON([{ a: 1 }, 'two', undefined, [3, null], 4.5]))
  item.write(encoder, 0)
  encoding.writeVarUint(encoder.restEncoder, 0) // empty delete set
  const u = encoder.toUint8Array()
  const d = new Y.Doc()
  Y.applyUpdate(d, u)
  if (d.getArray('legacy').length !== 5) throw new Error('ContentJSON vector not applied')
  addUpdate('legacy_content_json', u, 'ContentJSON incl. the literal "undefined"')
}

// Updates written by pycrdt (Yrs), from gen_pycrdt.py: Yjs must apply them too.
const pycrdtRaw = JSON.parse(readFileSync(new URL('pycrdt_raw.json', outDir)))
for (const { name, hex: h } of pycrdtRaw.updates) {
  addUpdate(name, new Uint8Array(Buffer.from(h, 'hex')), `written by pycrdt ${pycrdtRaw.pycrdt}`)
}

// Random multi-client session: everything above, interleaved, merged.
const randomSession = (seed, rounds, clients) => {
  const gen = prng.create(seed)
  const docs = []
  for (let i = 0; i < clients; i++) {
    docs.push(newDoc(i % 2 === 0 ? prng.uint32(gen, 1, 2 ** 31) : prng.uint53(gen, 2 ** 32, 2 ** 53 - 1)))
  }
  const all = []
  docs.forEach((d) => d.on('update', (u) => all.push(u)))
  for (let r = 0; r < rounds; r++) {
    const doc = prng.oneOf(gen, docs)
    const text = doc.getText('text')
    const op = prng.int32(gen, 0, 9)
    if (op <= 4 || text.length === 0) {
      const s = prng.utf16String(gen, prng.int32(gen, 1, 400))
      text.insert(prng.int32(gen, 0, text.length), s, op === 1 ? { bold: true } : undefined)
    } else if (op <= 6) {
      const pos = prng.int32(gen, 0, text.length - 1)
      text.delete(pos, prng.int32(gen, 1, Math.min(50, text.length - pos)))
    } else if (op === 7) {
      doc.getMap('map').set('k' + prng.int32(gen, 0, 20), { n: prng.real53(gen), s: prng.word(gen) })
    } else if (op === 8) {
      doc.getArray('arr').insert(0, [prng.int32(gen, -1000, 1000), new Uint8Array([r & 255])])
    } else {
      text.format(prng.int32(gen, 0, text.length - 1), 3, { italic: prng.bool(gen) || null })
    }
    // exchange updates between random pairs so that origins point at other clients
    if (prng.int32(gen, 0, 3) === 0) {
      const other = prng.oneOf(gen, docs)
      Y.applyUpdate(other, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other)))
    }
  }
  return all
}

{
  const all = randomSession(1, 300, 4)
  addUpdate('random_session_merged', Y.mergeUpdates(all), 'merged random session, 4 clients')
  addUpdate('random_session_update_0', all[0])
  addUpdate('random_session_update_last', all[all.length - 1])
}

// ~1 MB merged update for benchmarks: merged in chunks (mergeUpdates is slow on many inputs).
{
  const all = randomSession(2, 10000, 3)
  const chunks = []
  for (let i = 0; i < all.length; i += 200) chunks.push(Y.mergeUpdates(all.slice(i, i + 200)))
  const large = Y.mergeUpdates(chunks)
  writeFileSync(new URL('large_merged.bin', outDir), large)
  const meta = Y.parseUpdateMeta(large)
  const structs = []
  for (const [client, clock] of meta.from) structs.push({ client, clock, end: meta.to.get(client) })
  const decoded = Y.decodeUpdate(large)
  let deletes = 0
  for (const items of decoded.ds.clients.values()) deletes += items.length
  updates.push({
    name: 'large_merged',
    note: `${large.length} bytes, stored in large_merged.bin`,
    file: 'large_merged.bin',
    structs,
    deleteCount: deletes,
    hasSkips: decoded.structs.some((s) => s instanceof Y.Skip)
  })
  console.log('large_merged.bin:', large.length, 'bytes')
}

// ---------------------------------------------------------------------------------------------
// State vectors

const stateVectors = []
const addStateVector = (name, sv) => {
  const entries = []
  for (const [client, clock] of Y.decodeStateVector(sv)) entries.push({ client, clock })
  stateVectors.push({ name, hex: hex(sv), entries })
}
{
  addStateVector('empty', Y.encodeStateVector(new Y.Doc()))
  const a = newDoc(1)
  a.getText('t').insert(0, 'hello')
  addStateVector('one_client', Y.encodeStateVector(a))
  const b = newDoc(2 ** 53 - 1)
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  b.getMap('m').set('x', 'y'.repeat(300))
  b.getText('t').insert(0, 'x'.repeat(200))
  addStateVector('two_clients_large_ids', Y.encodeStateVector(b))
  addStateVector('from_update', Y.encodeStateVectorFromUpdate(Y.encodeStateAsUpdate(b)))
}

// ---------------------------------------------------------------------------------------------
// y-websocket messages, exactly as y-protocols writes them (y-websocket prefixes the type).

const messageSync = 0
const messageAwareness = 1
const messageAuth = 2
const messageQueryAwareness = 3

const messages = []
const addMessage = (name, bytes, expect) => messages.push({ name, hex: hex(bytes), ...expect })

{
  const doc = newDoc(31337)
  doc.getText('t').insert(0, 'sync me')
  const remote = newDoc(4242)
  remote.getText('t').insert(0, 'remote')

  let enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageSync)
  syncProtocol.writeSyncStep1(enc, doc)
  addMessage('sync_step1', encoding.toUint8Array(enc),
    { type: messageSync, sync: 0, payloadHex: hex(Y.encodeStateVector(doc)) })

  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageSync)
  syncProtocol.writeSyncStep1(enc, new Y.Doc())
  addMessage('sync_step1_empty_doc', encoding.toUint8Array(enc), { type: messageSync, sync: 0, payloadHex: '00' })

  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageSync)
  syncProtocol.writeSyncStep2(enc, doc, Y.encodeStateVector(remote))
  addMessage('sync_step2', encoding.toUint8Array(enc),
    { type: messageSync, sync: 1, payloadHex: hex(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(remote))) })

  const big = newDoc(8)
  big.getText('t').insert(0, 'z'.repeat(70000)) // payload length needs a 3-byte varUint
  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageSync)
  syncProtocol.writeSyncStep2(enc, big, new Uint8Array([0]))
  addMessage('sync_step2_70k', encoding.toUint8Array(enc),
    { type: messageSync, sync: 1, payloadHex: hex(Y.encodeStateAsUpdate(big)) })

  const rec = recorder(doc)
  doc.getText('t').insert(0, '!')
  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageSync)
  syncProtocol.writeUpdate(enc, rec[0])
  addMessage('sync_update', encoding.toUint8Array(enc), { type: messageSync, sync: 2, payloadHex: hex(rec[0]) })

  const aw = new awarenessProtocol.Awareness(doc)
  aw.setLocalState({ user: { name: 'Ådne 😀', color: '#30bced' }, cursor: null })
  const awUpdate = awarenessProtocol.encodeAwarenessUpdate(aw, [doc.clientID])
  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageAwareness)
  encoding.writeVarUint8Array(enc, awUpdate)
  addMessage('awareness', encoding.toUint8Array(enc), { type: messageAwareness, sync: 0, payloadHex: hex(awUpdate) })
  aw.destroy()

  enc = encoding.createEncoder()
  encoding.writeVarUint(enc, messageQueryAwareness)
  addMessage('query_awareness', encoding.toUint8Array(enc), { type: messageQueryAwareness, sync: 0, payloadHex: '' })

  for (const [name, reason] of [['auth_permission_denied', 'read-only connection'], ['auth_permission_denied_empty', ''], ['auth_permission_denied_unicode', 'nø ✋']]) {
    enc = encoding.createEncoder()
    encoding.writeVarUint(enc, messageAuth)
    authProtocol.writePermissionDenied(enc, reason)
    addMessage(name, encoding.toUint8Array(enc),
      { type: messageAuth, sync: 0, payloadHex: hex(Buffer.from(reason, 'utf8')), reason })
  }
}

// ---------------------------------------------------------------------------------------------
// Awareness updates (the content of an awareness message)

const awareness = []
{
  const docA = newDoc(1001)
  const docB = newDoc(2 ** 40 + 3)
  const awA = new awarenessProtocol.Awareness(docA)
  const awB = new awarenessProtocol.Awareness(docB)
  awA.setLocalState({ user: { name: 'A', color: '#ff0000' }, cursor: { anchor: 1, head: 4 } })
  awA.setLocalStateField('typing', true)
  awB.setLocalState({ user: { name: 'B "quoted" \\ ✓' }, list: [1, 2.5, null, 'x'], deep: { a: { b: { c: {} } } } })
  awarenessProtocol.applyAwarenessUpdate(awA, awarenessProtocol.encodeAwarenessUpdate(awB, [docB.clientID]), 'remote')
  const both = awarenessProtocol.encodeAwarenessUpdate(awA, [docA.clientID, docB.clientID])
  const add = (name, bytes) => {
    // read back in y-protocols' own order (applyAwarenessUpdate) to record what Go must find
    const entries = []
    const decoder = decoding.createDecoder(bytes)
    const n = decoding.readVarUint(decoder)
    for (let i = 0; i < n; i++) {
      const clientID = decoding.readVarUint(decoder)
      const clock = decoding.readVarUint(decoder)
      const state = decoding.readVarString(decoder)
      entries.push({ clientID, clock, state })
    }
    awareness.push({ name, hex: hex(bytes), entries })
  }
  add('two_clients', both)
  add('empty', awarenessProtocol.encodeAwarenessUpdate(awA, []))
  awarenessProtocol.removeAwarenessStates(awA, [docB.clientID], 'test')
  add('removed_state', awarenessProtocol.encodeAwarenessUpdate(awA, [docB.clientID]))
  awA.setLocalState(null)
  add('local_state_null', awarenessProtocol.encodeAwarenessUpdate(awA, [docA.clientID]))
  awA.destroy()
  awB.destroy()
}

const out = {
  generator: 'yproto/testdata/gen/gen.mjs',
  versions: {
    yjs: versionOf('yjs'),
    'y-protocols': versionOf('y-protocols'),
    lib0: versionOf('lib0')
  },
  updates,
  stateVectors,
  messages,
  pycrdtMessages: pycrdtRaw.messages,
  awareness
}
writeFileSync(new URL('yjs.json', outDir), JSON.stringify(out, null, 1) + '\n')
console.log(`wrote ${updates.length} updates, ${stateVectors.length} state vectors, ${messages.length} messages, ${awareness.length} awareness updates`)
