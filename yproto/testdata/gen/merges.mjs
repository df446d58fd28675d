// Generates the merge vectors for yproto.MergeUpdates and DiffUpdate: sets of updates and
// what Yjs 13.6's Y.mergeUpdates makes of them, and updates, state vectors and what
// Y.diffUpdate makes of them.
//
//   cd yproto/testdata/gen && npm ci && node merges.mjs
//
// Output (committed): ../vectors/yjs_merges.json, a list of
//   { name, note, inputs: [hex], merged: hex, json }
// where json is the document Yjs builds from the inputs (every root type, object keys sorted,
// as one JSON text). Deterministic: fixed client IDs, seeded PRNG.
//
// The cases cover what a merge must get right: overlapping inputs (the same structs from
// several peers, step 2 answers that overlap the tail), items written from an offset (string
// content cut inside a surrogate pair, Any content, deleted content), GC structs, Skip
// structs (merges of updates with gaps), map items with keys, and large fan-in.

import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { writeFileSync } from 'node:fs'

const hex = (u8) => Buffer.from(u8).toString('hex')
const cases = []

const docJSON = (updates) => {
  const doc = new Y.Doc()
  for (const u of updates) Y.applyUpdate(doc, u)
  const out = {}
  for (const name of [...doc.share.keys()].sort()) {
    // Root types are created untyped by applyUpdate; read each as what it was written as.
    if (name.startsWith('map')) out[name] = doc.getMap(name).toJSON()
    else if (name.startsWith('arr')) out[name] = doc.getArray(name).toJSON()
    else if (name.startsWith('xml')) out[name] = doc.getXmlFragment(name).toString()
    else out[name] = doc.getText(name).toDelta()
  }
  return out
}

// JSON with object keys sorted: a map's toJSON lists keys in the order they were integrated.
const canonical = (v) => JSON.stringify(v, (k, x) =>
  x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x)

const addCase = (name, inputs, note = '') => {
  const merged = Y.mergeUpdates(inputs)
  // Yjs must read its own merge back to the same document as the inputs.
  const want = canonical(docJSON(inputs))
  const got = canonical(docJSON([merged]))
  // Except where a cut splits a surrogate pair: applying such a cut item before the whole
  // one makes Yjs split the whole item there too (both halves become U+FFFD), while the
  // merge keeps the whole item. The merge's document is the expectation either way.
  if (want !== got && !note.includes('surrogate')) throw new Error(`${name}: Yjs's own merge changes the document`)
  cases.push({ name, note, inputs: inputs.map(hex), merged: hex(merged), json: got })
}

const newDoc = (clientID, opts = {}) => {
  const doc = new Y.Doc(opts)
  doc.clientID = clientID
  return doc
}

const recorder = (doc) => {
  const list = []
  doc.on('update', (u) => list.push(u))
  return list
}

// Random edits by several clients that exchange updates now and then.
const session = (seed, rounds, clients, opts = {}) => {
  const gen = prng.create(seed)
  const docs = []
  for (let i = 0; i < clients; i++) docs.push(newDoc(1000 + i * 7919 + seed, opts))
  const all = []
  docs.forEach((d) => d.on('update', (u) => all.push(u)))
  for (let r = 0; r < rounds; r++) {
    const doc = prng.oneOf(gen, docs)
    const text = doc.getText('text')
    const op = prng.int32(gen, 0, 9)
    if (op <= 4 || text.length === 0) {
      const s = prng.int32(gen, 0, 3) === 0 ? '😀a𝄞' : prng.utf16String(gen, prng.int32(gen, 1, 12))
      text.insert(prng.int32(gen, 0, text.length), s, op === 1 ? { bold: true } : undefined)
    } else if (op <= 6) {
      const pos = prng.int32(gen, 0, text.length - 1)
      text.delete(pos, prng.int32(gen, 1, Math.min(20, text.length - pos)))
    } else if (op === 7) {
      doc.getMap('map').set('k' + prng.int32(gen, 0, 5), { n: prng.int32(gen, 0, 100), s: prng.word(gen) })
    } else {
      const arr = doc.getArray('arr')
      if (arr.length > 3 && prng.bool(gen)) arr.delete(prng.int32(gen, 0, arr.length - 2), 2)
      else arr.insert(prng.int32(gen, 0, arr.length), [prng.int32(gen, -1000, 1000), 'x' + r, { r }])
    }
    if (prng.int32(gen, 0, 3) === 0) {
      const other = prng.oneOf(gen, docs)
      Y.applyUpdate(other, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(other)))
    }
  }
  return { all, docs, gen }
}

// 1. Plain merges of a session's updates: all, in a shuffled order, and in chunks.
{
  const { all, gen } = session(1, 200, 3)
  addCase('session_all', all, 'every update of a 3-client session, in order')
  const shuffled = all.slice()
  for (let i = shuffled.length - 1; i > 0; i--) { // Fisher-Yates with the seeded PRNG
    const j = prng.int32(gen, 0, i)
    ;[shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]
  }
  addCase('session_shuffled', shuffled, 'the same updates in a random order')
  const chunks = []
  for (let i = 0; i < all.length; i += 37) chunks.push(Y.mergeUpdates(all.slice(i, i + 37)))
  addCase('session_chunks', chunks, 'merged chunks of 37 updates')
}

// 2. Overlapping inputs: merges of overlapping ranges, and the same update twice.
{
  const { all } = session(2, 150, 3)
  const a = Y.mergeUpdates(all.slice(0, 100))
  const b = Y.mergeUpdates(all.slice(50, 150))
  addCase('overlapping_ranges', [a, b], 'merge(0..100) and merge(50..150)')
  addCase('overlapping_reversed', [b, a], 'the same, the later range first')
  addCase('duplicate_inputs', [all[3], all[3], a, all[60]], 'an update twice, and updates that a merge holds already')
  const whole = Y.mergeUpdates(all)
  addCase('snapshot_and_tail', [whole, ...all.slice(140)], 'a snapshot and updates it holds already')
}

// 3. Peers' full states: the same structs, split differently (a peer's live document
// joins adjacent items), so structs at the same clock have different lengths.
{
  const { docs } = session(3, 250, 3)
  addCase('peer_states', docs.map((d) => Y.encodeStateAsUpdate(d)), 'every peer\'s encodeStateAsUpdate')
  addCase('peer_states_reversed', docs.map((d) => Y.encodeStateAsUpdate(d)).reverse())
}

// 4. Items written from an offset: diffs against state vectors that end inside items.
{
  const doc = newDoc(77)
  const rec = recorder(doc)
  const text = doc.getText('text')
  text.insert(0, 'ab😀cd𝄞ef') // one item: a b (2 units) c d (2 units) e f = 10 units
  doc.getArray('arr').insert(0, [1, 'two', { three: 3 }, [4], null, true, 2.5])
  doc.getMap('map').set('key', 'first')
  doc.getMap('map').set('key', 'second') // an item with an origin and a parentSub
  const full = Y.encodeStateAsUpdate(doc)
  for (const cut of [1, 2, 3, 4, 5, 7, 8, 9]) {
    const diff = Y.diffUpdate(full, encodeSV(new Map([[77, cut]])))
    const later = Y.diffUpdate(full, encodeSV(new Map([[77, cut + 1]])))
    addCase(`string_from_offset_${cut}`, [later, diff, rec[2]],
      `the text item from clock ${cut} and ${cut + 1}${cut === 3 || cut === 7 ? ' (inside a surrogate pair)' : ''}`)
    addCase(`string_offset_then_whole_${cut}`, [diff, full],
      `the cut item first, then the whole${cut === 3 || cut === 7 ? ' (inside a surrogate pair)' : ''}`)
  }
  const arrStart = 10
  for (const cut of [arrStart + 1, arrStart + 3, arrStart + 6]) {
    const diff = Y.diffUpdate(full, encodeSV(new Map([[77, cut]])))
    addCase(`any_from_offset_${cut - arrStart}`, [diff, full], 'Any content written from an offset')
  }
}

// 4b. A merge that itself cuts inside a surrogate pair: a peer that inserted between the
// halves of an emoji split the item there (both halves became U+FFFD); merged with a copy
// of the whole item that starts earlier, the copy is written from inside the pair.
{
  const a = newDoc(78)
  a.getText('text').insert(0, 'ab😀cd𝄞ef')
  const full = Y.encodeStateAsUpdate(a)
  for (const at of [3, 7]) {
    const b = newDoc(79)
    Y.applyUpdate(b, full)
    b.getText('text').insert(at, 'X')
    const fromOne = Y.diffUpdate(full, encodeSV(new Map([[78, 1]])))
    addCase(`merge_cuts_surrogate_${at}`, [Y.encodeStateAsUpdate(b), fromOne],
      `a peer's item split at ${at} (inside a surrogate pair), and the whole item from clock 1`)
  }
}

// 4c. Items of one client with chained clocks and origins but different right origins: A
// typed "a", B typed "Z" after it, then A typed "b" between the two. Joining A's items
// would give "b" the right origin of "a" (none), and Yjs would then order "b" and "Z" by
// client ID instead of keeping "abZ". Both client orders, each way round.
for (const [idA, idB] of [[300, 200], [200, 300]]) {
  const a = newDoc(idA)
  const b = newDoc(idB)
  const recA = recorder(a)
  a.getText('text').insert(0, 'a')
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  b.getText('text').insert(1, 'Z')
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
  a.getText('text').insert(1, 'b')
  if (a.getText('text').toString() !== 'abZ') throw new Error('setup: ' + a.getText('text').toString())
  addCase(`right_origin_differs_${idA}_${idB}`, [...recA, Y.encodeStateAsUpdate(b)],
    `A's two items chain by origin but not by right origin (A ${idA}, B ${idB})`)
}

// 5. Deleted content and GC structs, cut and whole.
{
  const doc = newDoc(88) // gc on: deleted text becomes ContentDeleted, deleted types GC
  const text = doc.getText('text')
  text.insert(0, 'hello world, hello yjs')
  text.delete(2, 15)
  const arr = doc.getArray('arr')
  const inner = new Y.Map()
  arr.insert(0, [inner])
  inner.set('a', 1)
  inner.set('b', 'two')
  arr.delete(0, 1) // the map's entries become GC
  const full = Y.encodeStateAsUpdate(doc)
  for (const cut of [4, 10]) {
    addCase(`deleted_from_offset_${cut}`, [Y.diffUpdate(full, encodeSV(new Map([[88, cut]]))), full],
      'ContentDeleted written from an offset, then the whole')
  }
  const other = newDoc(89)
  Y.applyUpdate(other, full)
  other.getText('text').insert(1, 'XY')
  addCase('gc_and_items', [full, Y.encodeStateAsUpdate(other)], 'GC structs from two peers')
}

// 5b. Items deleted in part: long text and big values, cut where deletes begin and end
// (inside surrogate pairs too), from the same and from another client.
{
  const a = newDoc(601)
  const recA = recorder(a)
  const long = 'abcdefghij'.repeat(20) + '😀' + 'klmnopqrst'.repeat(20) // one item of 402 units
  a.getText('text').insert(0, long)
  a.getArray('arr').insert(0, ['x'.repeat(300), 1, 'y'.repeat(300), 2, { big: 'z'.repeat(200) }])
  const b = newDoc(602)
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const recB = recorder(b)
  b.getText('text').delete(50, 100) // inside the item
  b.getText('text').delete(150, 51) // ends inside the surrogate pair (200..201)
  b.getText('text').delete(380, 3) // a small part
  b.getArray('arr').delete(0, 1)
  b.getArray('arr').delete(1, 1) // the 'y's (now at index 1)
  addCase('partial_deletes', [...recA, ...recB], 'items deleted in part, big and small parts')
  a.getText('text').delete(0, 40)
  addCase('partial_deletes_both', [...recA, ...recB], 'and the item\'s start deleted by its own client')
}

// 6. Skip structs: merges of one client's updates with gaps, then the missing ones.
{
  const doc = newDoc(99)
  const rec = recorder(doc)
  for (let i = 0; i < 12; i++) doc.getText('text').insert(i, String.fromCharCode(97 + i))
  const gappy = Y.mergeUpdates([rec[0], rec[3], rec[4], rec[9]])
  addCase('skips_alone', [gappy, rec[11]], 'an update with Skips and a later one')
  addCase('skips_filled', [gappy, ...rec.slice(1, 3), rec[6], rec[5]], 'Skips filled in part')
  addCase('skips_filled_all', [gappy, ...rec], 'Skips filled completely')
  const gappy2 = Y.mergeUpdates([rec[1], rec[2], rec[7], rec[10]])
  addCase('two_skip_updates', [gappy, gappy2], 'two updates with Skips, interleaved')
}

// 7. Fan-in: many small updates of several clients, as a room's compaction sees them.
{
  const { all } = session(4, 1500, 5)
  const snapshot = Y.mergeUpdates(all.slice(0, 1000))
  addCase('compaction_fan_in', [snapshot, ...all.slice(1000)], 'a snapshot and 500 later updates')
}

// 8. XML and embeds and formats, from several peers.
{
  const a = newDoc(501)
  const b = newDoc(502)
  const frag = a.getXmlFragment('xml')
  const el = new Y.XmlElement('p')
  el.setAttribute('class', 'x')
  el.insert(0, [new Y.XmlText('hi')])
  frag.insert(0, [el])
  a.getText('text').insert(0, 'abc', { bold: true })
  a.getText('text').insertEmbed(1, { image: 'x.png' })
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  b.getText('text').format(0, 3, { italic: true })
  b.getXmlFragment('xml').insert(1, [new Y.XmlText('tail')])
  addCase('xml_embed_format', [Y.encodeStateAsUpdate(a), Y.encodeStateAsUpdate(b)], 'XML, embeds and formats')
}

function encodeSV (sv) {
  // Y.encodeStateVector takes a Doc or a Map of client → clock.
  return Y.encodeStateVector(sv)
}

// Diffs: what Y.diffUpdate makes of a merged update for a state vector: empty, a peer's
// earlier state, clocks inside items and inside a surrogate pair, clients the update lacks,
// everything, and an update with Skips.
const diffs = []
const addDiff = (name, update, sv, note = '') => {
  const diff = Y.diffUpdate(update, sv)
  // Yjs must read the diff on top of the state the state vector stands for: checked
  // where that state is known (addDiffFrom).
  diffs.push({ name, note, update: hex(update), sv: hex(sv), diff: hex(diff) })
}
const addDiffFrom = (name, updates, k, note = '') => {
  const whole = Y.mergeUpdates(updates)
  const before = Y.mergeUpdates(updates.slice(0, k))
  const sv = Y.encodeStateVectorFromUpdate(before)
  const doc = new Y.Doc()
  Y.applyUpdate(doc, before)
  Y.applyUpdate(doc, Y.diffUpdate(whole, sv))
  if (canonical(docJSON([Y.encodeStateAsUpdate(doc)])) !== canonical(docJSON([whole]))) throw new Error(`${name}: the diff does not complete the document`)
  addDiff(name, whole, sv, note)
}
{
  const { all } = session(7, 200, 3)
  const whole = Y.mergeUpdates(all)
  addDiff('diff_empty_sv', whole, Y.encodeStateVector(new Y.Doc()), 'an empty state vector: everything')
  addDiff('diff_complete_sv', whole, Y.encodeStateVectorFromUpdate(whole), 'the whole state: only the delete set')
  for (const k of [1, 50, 120, 199]) addDiffFrom(`diff_after_${k}`, all, k, `a peer that has the first ${k} updates`)
  const meta = Y.parseUpdateMeta(whole)
  const inside = new Map()
  for (const [client, to] of meta.to) inside.set(client, Math.max(1, to - 3))
  inside.set(987654321, 5) // a client the update does not have
  addDiff('diff_clocks_inside', whole, Y.encodeStateVector(inside), 'clocks near each client\'s end, and an unknown client')
}
{
  const a = newDoc(701)
  a.getText('text').insert(0, 'ab😀cd𝄞ef')
  a.getArray('arr').insert(0, [1, 'two', { three: 3 }])
  a.getText('text').delete(1, 2)
  const full = Y.encodeStateAsUpdate(a)
  for (const cut of [0, 1, 3, 7, 9, 10, 11, 12]) addDiff(`diff_cut_${cut}`, full, Y.encodeStateVector(new Map([[701, cut]])), `clock ${cut} of one client`)
}
{
  const doc = newDoc(702)
  const rec = recorder(doc)
  for (let i = 0; i < 12; i++) doc.getText('text').insert(i, String.fromCharCode(97 + i))
  const gappy = Y.mergeUpdates([rec[0], rec[3], rec[4], rec[9]])
  for (const cut of [0, 1, 2, 4, 6]) addDiff(`diff_skips_${cut}`, gappy, Y.encodeStateVector(new Map([[702, cut]])), 'an update with Skips')
}

writeFileSync(new URL('../vectors/yjs_merges.json', import.meta.url), JSON.stringify({ yjs: '13.6.33', cases, diffs }, null, 1) + '\n')
console.log('yjs_merges.json:', cases.length, 'cases,', diffs.length, 'diffs')
