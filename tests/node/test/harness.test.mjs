// Self-tests of the harness: the comparisons and the file reader must be able to fail.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as encoding from 'lib0/encoding'
import { Y, docDiff, xmlTree } from '../lib/clients.js'
import { parseWireFile, HEADER } from '../lib/wirefile.js'
import { caddyfileText } from '../lib/server.js'

const sync = (a, b) => {
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
}

test('harness: docDiff sees content, formatting, state-vector and delete-set differences', () => {
  const a = new Y.Doc(); const b = new Y.Doc()
  a.getText('text').insert(0, 'abc')
  assert.match(docDiff(a, b), /toJSON differs/)
  sync(a, b)
  assert.equal(docDiff(a, b), null)
  a.getText('text').format(0, 1, { bold: true })
  assert.match(docDiff(a, b), /formatted content differs/)
  sync(a, b)
  // same content, different history: a deletes what b never had
  const c = new Y.Doc(); const d = new Y.Doc()
  c.getMap('map').set('k', 1); d.getMap('map').set('k', 1)
  assert.match(docDiff(c, d), /state vectors differ/)
  // a delete does not change the state vector: only the delete set shows it
  const e = new Y.Doc()
  e.getArray('array').insert(0, [1, 2])
  const f = new Y.Doc(); Y.applyUpdate(f, Y.encodeStateAsUpdate(e))
  e.getArray('array').delete(0, 1)
  f.getArray('array').delete(1, 1)
  const g = new Y.Doc(); Y.applyUpdate(g, Y.encodeStateAsUpdate(e))
  assert.notEqual(docDiff(e, f), null)
  assert.equal(docDiff(e, g), null)
})

test('harness: xmlTree shows attributes and formatted text', () => {
  const doc = new Y.Doc()
  const p = new Y.XmlElement('paragraph')
  p.setAttribute('textAlign', 'center')
  const t = new Y.XmlText()
  p.insert(0, [t])
  doc.getXmlFragment('prosemirror').insert(0, [p])
  t.insert(0, 'hi', { bold: true })
  assert.deepEqual(xmlTree(doc.getXmlFragment('prosemirror')),
    { fragment: [{ name: 'paragraph', attrs: { textAlign: 'center' }, children: [{ text: [{ insert: 'hi', attributes: { bold: true } }] }] }] })
})

test('harness: WireDB file reader (header, records, torn tail, bad header)', () => {
  const u1 = (() => { const d = new Y.Doc(); d.getText('text').insert(0, 'one'); return Y.encodeStateAsUpdate(d) })()
  const e = encoding.createEncoder()
  encoding.writeUint8Array(e, HEADER)
  encoding.writeVarUint8Array(e, u1)
  encoding.writeVarUint8Array(e, u1)
  const whole = encoding.toUint8Array(e)
  const p = parseWireFile(whole)
  assert.equal(p.records.length, 2)
  assert.equal(p.torn, 0)
  assert.deepEqual(p.records[0], u1)
  const torn = parseWireFile(whole.subarray(0, whole.length - 3))
  assert.equal(torn.records.length, 1)
  assert.equal(torn.torn, u1.length + 1 - 3)
  assert.throws(() => parseWireFile(Buffer.from('0.0.2\u0000')), /bad header/)
})

test('harness: Caddyfile text', () => {
  const txt = caddyfileText({ port: 1234, dataDir: '/tmp/x', wiredbDirectives: ['fsync always'] })
  assert.match(txt, /^\{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\}/)
  assert.match(txt, /http:\/\/127\.0\.0\.1:1234 \{\n\tbind 127\.0\.0\.1\n\twiredb \/rooms\/\* \{\n\t\tdata_dir \/tmp\/x\n\t\tfsync always\n\t\}/)
  assert.match(caddyfileText({ port: 1, dataDir: '/d', adminPort: 2019 }), /admin 127\.0\.0\.1:2019/)
})
