// A ProseMirror/Tiptap-shaped Y.XmlFragment edited concurrently (DESIGN §3:
// XmlElement edits are what broke y-crdt's live Doc, so the server must relay bytes).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, withServer } from '../lib/server.js'
import { Y, prng, connectClient, connectClients, destroyAll, freshRoom, sleep, waitConverged, assertConverged, xmlTree, stable } from '../lib/clients.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

const SEED = Number(process.env.WIREDB_SEED || Date.now() % 1000000)
const ROOTS = { prosemirror: 'xml', meta: 'map' }

function el (name, attrs, children) {
  const e = new Y.XmlElement(name)
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v)
  if (children && children.length) e.insert(0, children)
  return e
}
function txt (s, fmt) {
  const t = new Y.XmlText()
  if (s) t.insert(0, s, fmt)
  return t
}
function para (s, attrs) { return el('paragraph', attrs, [txt(s)]) }

/** the starting document, as Tiptap's StarterKit would shape it */
function seedDoc (frag) {
  const hello = new Y.XmlText()
  hello.insert(0, 'Hello ')
  hello.insert(6, 'world', { bold: true })
  hello.insert(11, '!', { italic: true })
  frag.insert(0, [
    el('heading', { level: 1 }, [txt('Title')]),
    el('paragraph', { textAlign: 'left' }, [hello]),
    el('blockquote', {}, [para('quoted text')]),
    el('bulletList', {}, [
      el('listItem', {}, [para('item one')]),
      el('listItem', {}, [para('item two'), el('bulletList', {}, [el('listItem', {}, [para('nested item')])])])
    ]),
    el('codeBlock', { language: 'js' }, [txt('let x = 1')])
  ])
}

function walk (node, elements, texts) {
  for (const ch of node.toArray()) {
    if (ch instanceof Y.XmlText) texts.push(ch)
    else if (ch instanceof Y.XmlElement) { elements.push(ch); walk(ch, elements, texts) }
  }
}

const BLOCK_CONTAINERS = new Set(['blockquote', 'listItem'])
const MARKS = [{ bold: true }, { italic: true }, { bold: null }, { link: { href: 'https://example.com/x' } }, { code: true }, { italic: null }]

/** one random editor operation on the client's fragment; returns its name */
function randomXmlOp (gen, frag, who, i) {
  const elements = []; const texts = []
  walk(frag, elements, texts)
  const op = prng.int32(gen, 0, 9)
  switch (op) {
    case 0: { // insert a paragraph or heading at top level or in a container
      const containers = [frag, ...elements.filter((e) => BLOCK_CONTAINERS.has(e.nodeName))]
      const parent = prng.oneOf(gen, containers)
      const node = prng.bool(gen)
        ? para(`${who} p${i} `, prng.bool(gen) ? { textAlign: 'center' } : undefined)
        : el('heading', { level: prng.int32(gen, 1, 3) }, [txt(`${who} h${i}`)])
      parent.insert(prng.int32(gen, 0, parent.length), [node])
      return 'insert-block'
    }
    case 1: { // insert a list item (nested element) into a list
      const lists = elements.filter((e) => e.nodeName === 'bulletList')
      if (lists.length === 0) { frag.insert(frag.length, [el('bulletList', {}, [el('listItem', {}, [para(`${who} new list ${i}`)])])]); return 'insert-list' }
      const list = prng.oneOf(gen, lists)
      list.insert(prng.int32(gen, 0, list.length), [el('listItem', {}, [para(`${who} li${i}`)])])
      return 'insert-listItem'
    }
    case 2: { // set an attribute
      if (elements.length === 0) return 'noop'
      const e = prng.oneOf(gen, elements)
      if (e.nodeName === 'heading') e.setAttribute('level', prng.int32(gen, 1, 6))
      else e.setAttribute(prng.oneOf(gen, ['textAlign', 'data-by', 'indent']), prng.oneOf(gen, ['left', 'center', who, 2]))
      return 'set-attr'
    }
    case 3: { // remove an attribute
      const withAttrs = elements.filter((e) => Object.keys(e.getAttributes()).length > 0)
      if (withAttrs.length === 0) return 'noop'
      const e = prng.oneOf(gen, withAttrs)
      e.removeAttribute(prng.oneOf(gen, Object.keys(e.getAttributes())))
      return 'remove-attr'
    }
    case 4: case 5: { // type into a nested text, sometimes with a mark
      if (texts.length === 0) return 'noop'
      const t = prng.oneOf(gen, texts)
      const fmt = prng.int32(gen, 0, 2) === 0 ? prng.oneOf(gen, MARKS.filter((m) => Object.values(m)[0] !== null)) : undefined
      t.insert(prng.int32(gen, 0, t.length), prng.word(gen, 1, 5), fmt)
      return 'insert-text'
    }
    case 6: { // format a range of nested text (add or remove a mark)
      const nonEmpty = texts.filter((t) => t.length > 0)
      if (nonEmpty.length === 0) return 'noop'
      const t = prng.oneOf(gen, nonEmpty)
      const from = prng.int32(gen, 0, t.length - 1)
      t.format(from, prng.int32(gen, 1, t.length - from), prng.oneOf(gen, MARKS))
      return 'format-text'
    }
    case 7: { // delete some text
      const nonEmpty = texts.filter((t) => t.length > 1)
      if (nonEmpty.length === 0) return 'noop'
      const t = prng.oneOf(gen, nonEmpty)
      const from = prng.int32(gen, 0, t.length - 1)
      t.delete(from, prng.int32(gen, 1, Math.min(3, t.length - from)))
      return 'delete-text'
    }
    case 8: { // delete an element (and its subtree), keeping a few blocks around
      if (frag.length < 3 && prng.bool(gen)) return 'noop'
      const candidates = elements.filter((e) => e.parent)
      if (candidates.length === 0) return 'noop'
      const e = prng.oneOf(gen, candidates)
      const parent = e.parent
      const idx = parent.toArray().indexOf(e)
      if (idx >= 0) parent.delete(idx, 1)
      return 'delete-element'
    }
    default: { // split-like edit: several changes in one transaction, as ProseMirror does
      frag.doc.transact(() => {
        randomXmlOp(gen, frag, who, i + 10000)
        randomXmlOp(gen, frag, who, i + 20000)
      })
      return 'transaction'
    }
  }
}

test('Y.XmlFragment (ProseMirror/Tiptap shape) edited concurrently by 3 clients converges; a late joiner gets the same', { timeout: 120000 }, run(async (t, srv) => {
  const room = freshRoom('xml')
  t.diagnostic(`seed ${SEED} (set WIREDB_SEED to repeat)`)
  const clients = await connectClients(srv.wsBase, room, 3, { namePrefix: 'xml-' })
  let late
  try {
    const [a] = clients
    seedDoc(a.xml())
    a.doc.getMap('meta').set('title', 'doc')
    await waitConverged(clients, { roots: ROOTS, message: 'seed document at all clients' })
    const counts = {}
    const root = prng.create(SEED)
    for (let round = 0; round < 3; round++) {
      await Promise.all(clients.map(async (c, ci) => {
        const gen = prng.create(prng.uint32(root, 0, 0x7fffffff) + ci)
        for (let i = 0; i < 40; i++) {
          const name = randomXmlOp(gen, c.xml(), c.name, round * 100 + i)
          counts[name] = (counts[name] || 0) + 1
          const d = prng.int32(gen, 0, 8)
          if (d > 2) await sleep(d - 2)
        }
      }))
      await waitConverged(clients, { roots: ROOTS, timeout: 20000, message: `round ${round} to converge` })
    }
    t.diagnostic(`operations: ${stable(counts)}`)
    const tree = xmlTree(clients[0].xml())
    assert.ok(tree.fragment.length > 0, 'the document is not empty')
    late = await connectClient(srv.wsBase, room, { name: 'xml-late' })
    assertConverged([clients[0], late], ROOTS)
    assert.equal(late.xml().toString(), clients[0].xml().toString())
  } finally {
    await destroyAll([...clients, late])
  }
}))
