// Generates the test vectors of package ydoc: Yjs documents, the updates that built them,
// and what Yjs itself renders for each of their root types.
//
//   node internal/ydoc/testdata/gen/gen.mjs
//
// It uses the yjs installed for the Node end-to-end tests (tests/node: npm ci there first).
// Output (committed, so `go test` never needs Node): ../vectors.json
//
// Every document is built with fixed client IDs, so re-running the script reproduces the
// same bytes. For each document the file holds
//   updates   the v1 updates its docs emitted, in order (hex)
//   merged    Y.mergeUpdates(updates) (hex)
//   state     Y.encodeStateAsUpdate of the final doc (hex)
//   expected  the rendering ydoc must produce (of state; expectedMerged, when present, of the
//             merged updates, which can carry deleted content that state no longer has), computed here from Yjs' own toJSON(),
//             toString() and toDelta() of each root, in ydoc's output shape:
//               {"<root>": {"type": "Text"|"Map"|"Array"|"XmlFragment", "value": <toJSON()>,
//                           "delta": <toDelta()> (Text, only with formatting or embeds),
//                           "children": <tree> (XmlFragment)}}
//             passed through JSON.stringify, with Uint8Array as base64.

import { createRequire } from 'node:module'
import { writeFileSync, readFileSync } from 'node:fs'

const require = createRequire(new URL('../../../../tests/node/package.json', import.meta.url))
const Y = require('yjs')
const yjsVersion = JSON.parse(readFileSync(require.resolve('yjs/package.json'))).version

const hex = (u8) => Buffer.from(u8).toString('hex')

// JSON.stringify replacer: Uint8Array as base64, as ydoc renders binary content.
const replacer = (_key, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v)
const plain = (v) => (v === undefined ? null : JSON.parse(JSON.stringify(v, replacer)))

const xmlTree = (node) => {
  if (node instanceof Y.XmlText) return { type: 'XmlText', delta: plain(node.toDelta()) }
  if (node instanceof Y.XmlHook) return { type: 'XmlHook', hookName: node.hookName, value: plain(node.toJSON()) }
  if (node instanceof Y.XmlElement) {
    return {
      type: 'XmlElement',
      nodeName: node.nodeName,
      attributes: plain(node.getAttributes()),
      children: node.toArray().map(xmlTree)
    }
  }
  throw new Error('unexpected XML child ' + node)
}

// hasRich reports whether a text delta carries more than its plain string: formatting,
// embeds, or embedded shared types.
const hasRich = (delta) => delta.some((op) => op.attributes !== undefined || typeof op.insert !== 'string')

// inferable reports whether a root's structs tell its kind: a keyed entry, or a sequence
// item whose content was kept (not only ContentDeleted). ydoc renders other roots as Empty.
const inferable = (type) => {
  if (type._map.size > 0) return true
  for (let n = type._start; n !== null; n = n.right) {
    if (!(n.content instanceof Y.ContentDeleted)) return true
  }
  return false
}

const render = (doc, kinds) => {
  const out = {}
  for (const [name, declared] of Object.entries(kinds)) {
    // A root appears only if the update names it; then its kind is what ydoc can infer.
    if (!doc.share.has(name)) continue
    const kind = inferable(doc.share.get(name)) ? declared : 'Empty'
    switch (kind) {
      case 'Text': {
        const t = doc.getText(name)
        const r = { type: 'Text', value: t.toJSON() }
        const delta = t.toDelta()
        if (hasRich(delta)) r.delta = plain(delta)
        out[name] = r
        break
      }
      case 'Map':
        out[name] = { type: 'Map', value: plain(doc.getMap(name).toJSON()) }
        break
      case 'Array':
        out[name] = { type: 'Array', value: plain(doc.getArray(name).toJSON()) }
        break
      case 'XmlFragment': {
        const f = doc.getXmlFragment(name)
        out[name] = { type: 'XmlFragment', value: f.toString(), children: f.toArray().map(xmlTree) }
        break
      }
      case 'Empty':
        out[name] = { type: 'Empty', value: null }
        break
      default:
        throw new Error(kind)
    }
  }
  return out
}

const vectors = []

/**
 * Builds a document with build(docs), which edits one or more docs (fixed client IDs) and
 * syncs them as it likes; records every update any of them emitted, in order.
 * kinds names each root and the type it was created with.
 */
const add = (name, note, kinds, build, { clients = [101], gc = true } = {}) => {
  const docs = clients.map((id) => {
    const d = new Y.Doc({ gc })
    d.clientID = id
    return d
  })
  const updates = []
  docs.forEach((d) => d.on('update', (u, origin) => { if (origin !== 'sync') updates.push(u) }))
  build(docs, updates)
  // Bring every doc up to date and take the first as the result.
  const all = Y.mergeUpdates(updates.length ? updates : [Y.encodeStateAsUpdate(new Y.Doc())])
  docs.forEach((d) => Y.applyUpdate(d, all, 'sync'))
  const doc = docs[0]
  const state = Y.encodeStateAsUpdate(doc)
  // The rendering is taken from a fresh doc loaded from the state, as ydoc sees it: gc off,
  // so deleted content the update carries stays (and tells a root's kind).
  const fresh = new Y.Doc({ gc: false })
  Y.applyUpdate(fresh, state)
  const expected = render(fresh, kinds)
  // The merged updates can still carry deleted content that the state has collected; the
  // visible content must be the same.
  const fromMerged = new Y.Doc({ gc: false })
  Y.applyUpdate(fromMerged, all)
  const expectedMerged = render(fromMerged, kinds)
  const v = { name, note, updates: updates.map(hex), merged: hex(all), state: hex(state), expected }
  if (JSON.stringify(expectedMerged) !== JSON.stringify(expected)) {
    for (const [root, r] of Object.entries(expected)) {
      if (r.type !== 'Empty' && JSON.stringify(r) !== JSON.stringify(expectedMerged[root])) {
        throw new Error(`${name}: merged and state differ in ${root}`)
      }
    }
    v.expectedMerged = expectedMerged
  }
  vectors.push(v)
}

const sync = (a, b) => {
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)), 'sync')
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)), 'sync')
}

add('empty', 'nothing in it', {}, () => {})

add('text_plain', 'inserts and deletes, unicode with UTF-16 lengths', { text: 'Text' }, ([d]) => {
  const t = d.getText('text')
  t.insert(0, 'Hello, world!')
  t.insert(7, 'brave new ')
  t.delete(0, 2)
  t.insert(0, 'Je')
  t.insert(t.length, ' emoji 😀👩‍👩‍👧 flags 🇫🇷 astral 𝄞 ñé中文')
  t.delete(3, 1)
})

add('text_rich', 'formatting (set, change, remove), embeds of JSON and of a Y.Map', { rich: 'Text' }, ([d]) => {
  const t = d.getText('rich')
  t.insert(0, 'Hello, World! ')
  t.insert(14, 'bold', { bold: true })
  t.insert(18, ' italic+link', { italic: true, link: { href: 'https://example.com', title: 'ñ' } })
  t.format(0, 5, { color: '#ff0000', size: 12.5 })
  t.format(0, 2, { color: null })
  t.insertEmbed(3, { image: 'https://example.com/a.png', width: 100 })
  const m = new Y.Map()
  t.insertEmbed(5, m)
  m.set('mention', 'ada')
  t.insert(t.length, '\n', { header: 1 })
  t.delete(20, 3)
  t.format(8, 4, { bold: null })
})

add('text_only_formatting_removed', 'formatting applied and removed again', { t: 'Text' }, ([d]) => {
  const t = d.getText('t')
  t.insert(0, 'abcdef')
  t.format(1, 3, { bold: true })
  t.format(1, 3, { bold: null })
})

add('map', 'primitives, overwrites, deletes, binary, nested types', { m: 'Map' }, ([d]) => {
  const m = d.getMap('m')
  m.set('int', 42)
  m.set('neg', -7)
  m.set('big', 2 ** 40)
  m.set('float', 3.25)
  m.set('float64', 0.1)
  m.set('tiny', 1e-7)
  m.set('huge', 1e21)
  m.set('true', true)
  m.set('false', false)
  m.set('null', null)
  m.set('undef', undefined)
  m.set('str', 'ünïcödé 😀')
  m.set('json', { a: [1, 'two', { three: 3 }], b: null, c: {} })
  m.set('arr', [])
  m.set('bin', new Uint8Array([0, 1, 2, 250, 255]))
  m.set('overwritten', 'first')
  m.set('overwritten', 'second')
  m.set('gone', 'soon')
  m.delete('gone')
  const nm = new Y.Map()
  m.set('nestedMap', nm)
  nm.set('x', 1)
  nm.set('deep', new Y.Map())
  nm.get('deep').set('y', [true])
  const na = new Y.Array()
  m.set('nestedArray', na)
  na.push([1, 2, 3])
  const nt = new Y.Text()
  m.set('nestedText', nt)
  nt.insert(0, 'nested text', { bold: true })
  const nx = new Y.XmlFragment()
  m.set('nestedXml', nx)
  const p = new Y.XmlElement('p')
  nx.insert(0, [p])
  p.insert(0, [new Y.XmlText('hi')])
})

add('array', 'JSON values, binary, nested types, inserts and deletes', { a: 'Array' }, ([d]) => {
  const a = d.getArray('a')
  a.push([1, 'two', 3.5, true, null, { k: 'v' }, [1, [2]]])
  a.insert(1, ['inserted'])
  a.push([new Uint8Array([9, 8, 7])])
  a.delete(3, 2)
  const m = new Y.Map()
  a.push([m])
  m.set('in', 'map')
  const t = new Y.Text('text in array')
  a.insert(0, [t])
  const inner = new Y.Array()
  a.push([inner])
  inner.push(['x', 'y'])
  inner.delete(0, 1)
})

add('xml', 'elements, attributes, nested text with formatting, deletes, hooks', { prose: 'XmlFragment' }, ([d]) => {
  const f = d.getXmlFragment('prose')
  const h = new Y.XmlElement('heading')
  h.setAttribute('level', '1')
  h.insert(0, [new Y.XmlText('Title')])
  const p = new Y.XmlElement('paragraph')
  const pt = new Y.XmlText('Some bold and linked text')
  p.insert(0, [pt])
  f.insert(0, [h, p])
  // Edits of elements that already exist: they make y-crdt panic when applied one by one
  // (docs/y-crdt.md, "XmlElement edits panic").
  pt.format(5, 4, { bold: {} })
  pt.format(14, 6, { link: { href: 'https://example.com', target: '_blank' } })
  pt.format(0, 4, { em: true })
  p.setAttribute('align', 'center')
  p.setAttribute('data-x', 'y')
  p.removeAttribute('data-x')
  const list = new Y.XmlElement('bullet_list')
  const item = new Y.XmlElement('list_item')
  list.insert(0, [item])
  f.insert(2, [list])
  const ip = new Y.XmlElement('paragraph')
  item.insert(0, [ip])
  ip.insert(0, [new Y.XmlText('item one')])
  const gone = new Y.XmlElement('paragraph')
  f.insert(3, [gone])
  gone.insert(0, [new Y.XmlText('deleted later')])
  f.delete(3, 1)
  const hook = new Y.XmlHook('widget')
  hook.set('kind', 'chart')
  f.insert(3, [hook])
  f.insert(4, [new Y.XmlText('trailing text')])
})

add('xml_element_edits', 'many small updates editing existing XmlElements (each a y-crdt panic if applied alone)',
  { doc: 'XmlFragment' }, ([d]) => {
    const f = d.getXmlFragment('doc')
    const p = new Y.XmlElement('p')
    f.insert(0, [p])
    const t = new Y.XmlText()
    p.insert(0, [t])
    for (const ch of 'typing') t.insert(t.length, ch)
    p.setAttribute('class', 'a')
    p.setAttribute('class', 'b')
    p.insert(1, [new Y.XmlElement('br')])
    t.delete(0, 1)
  })

add('multi_root', 'several roots of every kind in one document',
  { title: 'Text', meta: 'Map', list: 'Array', body: 'XmlFragment' }, ([d]) => {
    d.getText('title').insert(0, 'A title')
    d.getMap('meta').set('author', 'ada')
    d.getArray('list').push(['x'])
    const e = new Y.XmlElement('p')
    d.getXmlFragment('body').insert(0, [e])
    e.insert(0, [new Y.XmlText('body text')])
  })

add('concurrent', 'two clients edit the same text, map and array concurrently, then sync',
  { t: 'Text', m: 'Map', a: 'Array' }, ([d1, d2]) => {
    d1.getText('t').insert(0, 'base text')
    d1.getArray('a').push([1, 2, 3])
    sync(d1, d2)
    d1.getText('t').insert(4, ' ONE')
    d2.getText('t').insert(4, ' TWO')
    d2.getText('t').delete(0, 2)
    d1.getMap('m').set('k', 'from 1')
    d2.getMap('m').set('k', 'from 2')
    d1.getArray('a').insert(1, ['a1'])
    d2.getArray('a').insert(1, ['a2'])
    d2.getArray('a').delete(0, 1)
    sync(d1, d2)
    d2.getText('t').insert(0, '>')
  }, { clients: [1, 2] })

add('emptied_map', 'a map whose keys were all deleted is still a Map', { m: 'Map' }, ([d]) => {
  d.getMap('m').set('a', 1)
  d.getMap('m').delete('a')
})

add('emptied_text', 'a text whose content was all deleted: in its state only deleted structs remain, ' +
  'kind unknown (Empty); the merged updates still carry the string (Text)',
  { t: 'Text' }, ([d]) => {
    d.getText('t').insert(0, 'gone')
    d.getText('t').delete(0, 4)
  })

add('no_gc', 'gc off: deleted content stays in the update', { t: 'Text', a: 'Array' }, ([d]) => {
  d.getText('t').insert(0, 'keep this, not this')
  d.getText('t').delete(9, 10)
  d.getArray('a').push([1, 2])
  d.getArray('a').delete(0, 2)
  d.getArray('a').push([3])
}, { gc: false })

// Random sessions: 2-3 clients make random edits of every kind and sync now and then, as
// y-websocket peers would. Seeded (mulberry32), so the output is reproducible.
const mulberry32 = (seed) => () => {
  seed |= 0; seed = (seed + 0x6D2B79F5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const words = ['a', 'bc', 'def', ' ', '\n', 'ñ', '😀', '中文', 'xyz ']
const attrSets = [{ bold: true }, { italic: true }, { bold: null }, { color: '#f00' }, { link: { href: 'u' } }, { size: 2.5 }]
const values = [0, -1, 42, 2 ** 33, 0.5, 'str', true, false, null, { o: [1, { p: 'q' }] }, [], new Uint8Array([1, 2])]
const names = ['p', 'h1', 'li', 'Blockquote']
for (let seed = 1; seed <= 40; seed++) {
  const rnd = mulberry32(seed)
  const pick = (a) => a[Math.floor(rnd() * a.length)]
  const int = (n) => Math.floor(rnd() * n)
  // A position in a text that does not split a surrogate pair (Yjs itself would then
  // write U+FFFD, which differs from what the doc shows).
  const pos = (t, n) => {
    const s = t.toString()
    let i = int(n + 1)
    while (i > 0 && i < s.length && s.charCodeAt(i - 1) >= 0xd800 && s.charCodeAt(i - 1) < 0xdc00) i--
    return i
  }
  const nClients = 2 + int(2)
  add(`random_${seed}`, 'random edits of every kind by several clients', { t: 'Text', m: 'Map', a: 'Array', x: 'XmlFragment' },
    (docs) => {
      for (let step = 0; step < 60; step++) {
        const d = pick(docs)
        const t = d.getText('t')
        const m = d.getMap('m')
        const a = d.getArray('a')
        const x = d.getXmlFragment('x')
        switch (int(9)) {
          case 0: t.insert(pos(t, t.length), pick(words), rnd() < 0.3 ? pick(attrSets) : undefined); break
          case 1: if (t.length > 2) { const i = pos(t, t.length - 2); const j = pos(t, t.length); if (j > i) t.delete(i, j - i) } break
          case 2: if (t.length > 1) { const i = pos(t, t.length - 1); const j = pos(t, t.length); if (j > i) t.format(i, j - i, pick(attrSets)) } break
          case 3: t.insertEmbed(pos(t, t.length), { img: pick(words) }); break
          case 4: if (rnd() < 0.2) { const n = new Y.Map(); m.set(pick(words), n); n.set('v', pick(values)) } else if (rnd() < 0.2 && m.size) m.delete(pick([...m.keys()])); else m.set(pick(words), pick(values)); break
          case 5: if (a.length && rnd() < 0.3) a.delete(int(a.length), 1); else a.insert(int(a.length + 1), [pick(values)]); break
          case 6: {
            const el = new Y.XmlElement(pick(names))
            x.insert(int(x.length + 1), [el])
            el.setAttribute('k', pick(words))
            el.insert(0, [new Y.XmlText(pick(words))])
            break
          }
          case 7: {
            // Edit an existing element: y-crdt bug 1 when applied update by update.
            const el = x.length ? x.get(int(x.length)) : null
            if (el instanceof Y.XmlElement) {
              if (rnd() < 0.5) el.setAttribute(pick(['k', 'j']), pick(words))
              else {
                const tx = el.get(0)
                if (tx instanceof Y.XmlText) tx.insert(pos(tx, tx.length), pick(words), rnd() < 0.5 ? pick(attrSets) : undefined)
              }
            } else if (x.length) x.delete(int(x.length), 1)
            break
          }
          case 8: if (rnd() < 0.5) sync(pick(docs), pick(docs)); break
        }
      }
    }, { clients: [1000, 4000000000, 77].slice(0, nClients), gc: seed % 5 !== 0 })
}

writeFileSync(new URL('../vectors.json', import.meta.url),
  JSON.stringify({ yjs: yjsVersion, vectors }, null, 1) + '\n')
console.log(`wrote ${vectors.length} vectors (yjs ${yjsVersion})`)
