// Writes cmd/wiredb-bench/testdata/yupdates.json: Yjs v1 updates of every struct and
// content kind, with the clock ranges Yjs itself decodes from them (Y.decodeUpdate), for
// the Go struct scanner's test (yupdate_test.go).
//
//   node fixtures.mjs

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const out = path.join(here, '..', '..', 'cmd', 'wiredb-bench', 'testdata', 'yupdates.json')

const cases = []
const hex = (u) => Buffer.from(u).toString('hex')

/** the covered ranges per client, as Yjs decodes them (Skips are gaps; adjacent merged) */
function ranges (u) {
  const { structs } = Y.decodeUpdate(u)
  const out = []
  for (const s of structs) {
    if (s.constructor.name === 'Skip') continue
    const last = out[out.length - 1]
    if (last && last[0] === s.id.client && last[2] === s.id.clock) last[2] += s.length
    else out.push([s.id.client, s.id.clock, s.id.clock + s.length])
  }
  return out
}

function add (name, u) {
  cases.push({ name, update: hex(u), ranges: ranges(u), stateVector: Object.fromEntries(Y.decodeStateVector(Y.encodeStateVectorFromUpdate(u))) })
}

function capture (doc, f) {
  const us = []
  const h = (u) => us.push(u)
  doc.on('update', h)
  f()
  doc.off('update', h)
  return us
}

// text: typing (ASCII, 2- and 3-byte UTF-8, a surrogate pair), formatting, an embed, deletes
{
  const doc = new Y.Doc({ gc: true })
  doc.clientID = 11
  const t = doc.getText('text')
  const us = capture(doc, () => {
    t.insert(0, 'hello')
    t.insert(5, ' wörld €')
    t.insert(0, '😀!')
    t.format(2, 5, { bold: true })
    t.insertEmbed(3, { image: 'x.png' })
    t.delete(1, 3)
  })
  us.forEach((u, i) => add(`text-${i}`, u))
  add('text-state', Y.encodeStateAsUpdate(doc))
  add('text-merged', Y.mergeUpdates(us))
}

// map and array: any values of every kind, JSON-ish, binary, nested types, a subdocument
{
  const doc = new Y.Doc()
  doc.clientID = 2222222
  const m = doc.getMap('m')
  const a = doc.getArray('a')
  const us = capture(doc, () => {
    m.set('num', 42)
    m.set('neg', -7)
    m.set('float', 1.5)
    m.set('big', 2n ** 60n)
    m.set('str', 'strïng')
    m.set('obj', { a: [1, 'two', null, true, false, { deep: [[[]]] }], u: undefined })
    m.set('bin', new Uint8Array([1, 2, 3]))
    a.push([1, 2, 'three', { four: 4 }, null])
    a.insert(1, [new Uint8Array([9])])
    const inner = new Y.Map()
    m.set('inner', inner)
    inner.set('k', 'v')
    const sub = new Y.Doc({ guid: 'sub-guid' })
    m.set('subdoc', sub)
    m.delete('neg')
    a.delete(0, 2)
  })
  us.forEach((u, i) => add(`map-array-${i}`, u))
  add('map-array-state', Y.encodeStateAsUpdate(doc))
}

// XML (what ProseMirror/Tiptap use): elements, attributes, text, a hook
{
  const doc = new Y.Doc()
  doc.clientID = 4000000000
  const frag = doc.getXmlFragment('prosemirror')
  const us = capture(doc, () => {
    const p = new Y.XmlElement('paragraph')
    frag.insert(0, [p])
    p.setAttribute('align', 'left')
    const tx = new Y.XmlText()
    p.insert(0, [tx])
    tx.insert(0, 'some text', { em: true })
    frag.insert(1, [new Y.XmlHook('hook')])
    tx.delete(0, 5)
  })
  us.forEach((u, i) => add(`xml-${i}`, u))
  add('xml-state', Y.encodeStateAsUpdate(doc))
}

// merges with gaps (Skip structs), and GC structs (a deleted nested type)
{
  const doc = new Y.Doc()
  doc.clientID = 7
  const t = doc.getText('t')
  const us = capture(doc, () => {
    for (let i = 0; i < 6; i++) t.insert(t.length, 'ab')
  })
  add('skip-merge', Y.mergeUpdates([us[0], us[2], us[5]]))
  const d2 = new Y.Doc()
  d2.clientID = 8
  const a = d2.getArray('a')
  a.push([new Y.Text('gone')])
  a.get(0).insert(4, ' soon')
  a.delete(0, 1)
  add('gc-state', Y.encodeStateAsUpdate(d2))
  add('two-clients', Y.mergeUpdates([Y.encodeStateAsUpdate(doc), Y.encodeStateAsUpdate(d2)]))
}

add('empty', new Uint8Array([0, 0]))

fs.mkdirSync(path.dirname(out), { recursive: true })
fs.writeFileSync(out, JSON.stringify(cases, null, 1) + '\n')
console.log(`${cases.length} cases in ${out}`)
