// The admin API (admin.api.wiredb on Caddy's admin endpoint), the caddy_wiredb_* metrics
// on the admin /metrics, and `caddy wiredb inspect|export` on a file the server wrote.
// Real Caddy with the admin endpoint on a free 127.0.0.1 port, real y-websocket clients.
// The admin API is called with node:http (Caddy's admin refuses fetch's Sec-Fetch-Mode and
// empty Origin). Every wait is bounded.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { TestServer, startServer, withServer, caddyOnly } from '../lib/server.js'
import {
  Y, connectClient, connectClients, destroyAll, freshRoom, sleep, waitFor, waitConverged, docDiff, stable
} from '../lib/clients.js'
import * as prng from 'lib0/prng'
import { openRaw } from '../lib/raw.js'
import { roomFile, readWireFile, docFromWireFile } from '../lib/wirefile.js'
import { scrapeMetrics } from '../lib/load.js'
import { httpBuffer, caddyCli } from '../lib/access.js'

const SKIP = caddyOnly('the admin API, metrics and the caddy wiredb CLI belong to the Caddy module')

const ROOTS = { text: 'text', map: 'map', array: 'array' }

/** the file of any room key, as storage names it (every byte outside [A-Za-z0-9._-] as %XX) */
function fileOfKey (dataDir, key) {
  let name = ''
  for (const b of Buffer.from(key, 'utf8')) {
    const c = String.fromCharCode(b)
    name += /[A-Za-z0-9._-]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0')
  }
  return path.join(dataDir, name + '.y')
}

/** edits of every root kind, deletions included */
function writeSample (c, tag) {
  c.text().insert(0, `hello ${tag} world`)
  c.text().delete(0, 6) // a deletion
  c.text().insert(c.text().length, '!')
  c.map().set('a', 1)
  c.map().set('b', 'two')
  c.map().set('gone', true)
  c.map().delete('gone')
  c.map().set('nested', { x: [1, 2], y: null })
  c.array().push([1, 'two', { three: 3 }])
  c.array().insert(0, [true])
}

/** Yjs' own toJSON of the sample roots */
const clientJSON = (doc) => Object.fromEntries(Object.entries(ROOTS).map(([name, kind]) => {
  const t = kind === 'text' ? doc.getText(name) : kind === 'map' ? doc.getMap(name) : doc.getArray(name)
  return [name, t.toJSON()]
}))

/** asserts a rendered document ({root: {type, value}}) equals the doc's roots */
function assertRendered (rendered, doc, what) {
  assert.ok(rendered && typeof rendered === 'object', `${what}: not a JSON object: ${JSON.stringify(rendered)}`)
  const want = clientJSON(doc)
  const types = { text: 'Text', map: 'Map', array: 'Array' }
  for (const [name, value] of Object.entries(want)) {
    assert.ok(rendered[name], `${what}: no root ${name} in ${JSON.stringify(rendered).slice(0, 500)}`)
    assert.equal(rendered[name].type, types[name], `${what}: root ${name} type`)
    assert.equal(stable(rendered[name].value), stable(value), `${what}: root ${name} value`)
  }
  assert.deepEqual(Object.keys(rendered).sort(), Object.keys(want).sort(), `${what}: roots`)
}

const copyDoc = (doc) => { const d = new Y.Doc(); Y.applyUpdate(d, Y.encodeStateAsUpdate(doc)); return d }

/** asserts an admin error answer: status and a JSON {"error": "..."} body */
function assertApiError (res, status, what) {
  assert.equal(res.status, status, `${what}: status ${res.status}, want ${status}; body ${res.text}`)
  assert.ok(res.json && typeof res.json.error === 'string' && res.json.error.length > 0,
    `${what}: the body must be JSON {"error": ...}, got ${JSON.stringify(res.text)}`)
  assert.match(String(res.headers['content-type']), /json/, `${what}: content-type`)
}

// ---------------------------------------------------------------------------

describe('admin API /wiredb/rooms', { skip: SKIP }, () => {
  let server
  before(async () => { server = await startServer({ admin: true, wiredbDirectives: ['fsync always', 'room_idle_timeout 1s'] }) })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)
  const api = (srv, p, o) => httpBuffer(`${srv.adminUrl}/wiredb/rooms${p}`, o)
  const listed = async (srv) => {
    const r = await api(srv, '')
    assert.equal(r.status, 200, `GET /wiredb/rooms: ${r.status} ${r.text}`)
    return r.json
  }
  const roomsOf = (list) => Object.fromEntries(list.flatMap((d) => d.rooms).map((r) => [r.key, r]))

  test('GET /wiredb/rooms lists the loaded rooms: key, connections, sizes, path', { timeout: 30000 }, run(async (t, srv) => {
    const r1 = freshRoom('adm')
    const r2 = `notes/${freshRoom('n')}` // a key with a slash: percent-encoded file name
    const a = await connectClients(srv.wsBase, r1, 2, { namePrefix: 'adm-' })
    const b = await connectClient(srv.wsBase, r2, { name: 'adm-notes' })
    try {
      writeSample(a[0], 'r1')
      writeSample(b, 'r2')
      await waitConverged(a)
      const list = await listed(srv)
      t.diagnostic(JSON.stringify(list))
      assert.ok(Array.isArray(list) && list.length === 1, `one data directory: ${JSON.stringify(list)}`)
      assert.equal(list[0].data_dir, srv.dataDir)
      const rooms = roomsOf(list)
      for (const [key, conns] of [[r1, 2], [r2, 1]]) {
        const info = rooms[key]
        assert.ok(info, `room ${key} is not listed: ${JSON.stringify(list)}`)
        assert.equal(info.connections, conns, `${key}: connections`)
        assert.equal(info.path, fileOfKey(srv.dataDir, key), `${key}: path`)
        assert.ok(fs.existsSync(info.path), `${key}: the listed path exists`)
        for (const f of ['snapshot_bytes', 'tail_bytes', 'tail_updates', 'file_bytes']) {
          assert.equal(typeof info[f], 'number', `${key}: ${f} is a number`)
        }
        assert.ok(info.tail_updates > 0 && info.tail_bytes > 0, `${key}: updates since the last compaction: ${JSON.stringify(info)}`)
        // fsync always: every relayed update is written; the file size is the listed one
        assert.equal(info.file_bytes, fs.statSync(info.path).size, `${key}: file_bytes vs the file's size`)
      }
      assert.ok(rooms[r2].path.endsWith(`notes%2F${r2.slice('notes/'.length)}.y`), rooms[r2].path)
      await a[1].destroy()
      await waitFor(async () => roomsOf(await listed(srv))[r1]?.connections === 1, { timeout: 5000, message: 'connections of r1 to drop to 1' })
    } finally {
      await destroyAll([...a, b])
    }
  }))

  test('GET /wiredb/rooms/<key> renders the document; .../update is a merged update equal to the clients\' doc', { timeout: 30000 }, run(async (t, srv) => {
    const key = `team/${freshRoom('doc')}`
    const [a, b] = await connectClients(srv.wsBase, key, 2, { namePrefix: 'doc-' })
    try {
      writeSample(a, 'a')
      b.text().insert(0, 'b says ')
      b.array().push(['from b'])
      await waitConverged([a, b])
      const esc = encodeURIComponent(key)
      assert.ok(esc.includes('%2F'))

      const r = await api(srv, `/${esc}`)
      assert.equal(r.status, 200, `GET /wiredb/rooms/${esc}: ${r.status} ${r.text}`)
      assert.match(String(r.headers['content-type']), /application\/json/)
      t.diagnostic(r.text)
      assertRendered(r.json, a.doc, 'GET /wiredb/rooms/<key>')

      const u = await api(srv, `/${esc}/update`)
      assert.equal(u.status, 200, `GET .../update: ${u.status} ${u.text}`)
      assert.match(String(u.headers['content-type']), /application\/octet-stream/)
      t.diagnostic(`update: ${u.body.length} bytes, ${u.headers['content-disposition']}`)
      const d = new Y.Doc()
      Y.applyUpdate(d, new Uint8Array(u.body))
      assert.equal(d.store.pendingStructs, null, 'the update leaves nothing pending')
      const diff = docDiff(a.doc, d, ROOTS)
      assert.equal(diff, null, `the admin update differs from the clients' doc: ${diff}`)

      // unescaped slash: not one segment
      const two = await api(srv, `/${key}`)
      assert.notEqual(two.status, 200, `GET with an unescaped slash: ${two.status} ${two.text}`)
    } finally {
      await destroyAll([a, b])
    }
  }))

  test('POST .../compact rewrites the file as one record; the room carries on', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('cmp')
    const file = roomFile(srv.dataDir, room)
    const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'cmp-' })
    try {
      for (let i = 0; i < 20; i++) {
        a.text().insert(a.text().length, `a${i};`)
        b.map().set(`k${i}`, i)
        if (i % 5 === 0) await sleep(20)
      }
      await waitConverged([a, b])
      const before = readWireFile(file)
      t.diagnostic(`before: ${before.records.length} records, ${before.size} bytes`)
      assert.ok(before.records.length > 1, `the file has several records before compaction (${before.records.length})`)

      const r = await api(srv, `/${room}/compact`, { method: 'POST' })
      assert.equal(r.status, 200, `POST compact: ${r.status} ${r.text}`)
      assert.deepEqual(r.json, { compacted: room })
      const after = readWireFile(file)
      t.diagnostic(`after: ${after.records.length} records, ${after.size} bytes`)
      assert.equal(after.records.length, 1, 'one record after compaction')
      assert.equal(after.torn, 0)
      const fileDoc = docFromWireFile(file)
      assert.equal(docDiff(a.doc, fileDoc, ROOTS), null, 'the compacted file holds the clients\' document')
      const info = roomsOf(await listed(srv))[room]
      assert.equal(info.tail_updates, 0, `no updates since the compaction: ${JSON.stringify(info)}`)
      assert.equal(info.file_bytes, after.size)

      // the room carries on and appends after the merged record
      a.text().insert(0, 'after compaction;')
      await waitConverged([a, b])
      await waitFor(() => readWireFile(file).records.length === 2, { timeout: 5000, message: 'the next update to be appended' })
      assert.equal(docDiff(a.doc, docFromWireFile(file), ROOTS), null)
    } finally {
      await destroyAll([a, b])
    }
  }))

  // Compaction drops the content of deleted items (written as ContentDeleted, as a Yjs
  // document with gc on keeps them): the file shrinks, and Yjs reads the same document from
  // it, including a late joiner that then edits next to what was deleted.
  test('compaction drops deleted content; Yjs reads the same document and edits on', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('gc')
    const file = roomFile(srv.dataDir, room)
    const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'gc-' })
    const clients = [a, b]
    try {
      const words = Array.from({ length: 300 }, (_, i) => `word${i} `)
      for (let i = 0; i < words.length; i++) {
        const c = i % 2 ? b : a
        c.text().insert(c.text().length, words[i], i % 7 === 0 ? { bold: true } : undefined)
        if (i % 25 === 0) await waitConverged([a, b])
      }
      a.map().set('big', 'x'.repeat(2000))
      b.array().insert(0, [{ payload: 'y'.repeat(1000) }, 'keep'])
      await waitConverged([a, b])
      a.text().delete(10, a.text().length - 30) // most of the text
      a.text().format(0, 5, { italic: true })
      b.map().set('big', 'small') // the 2,000-character value is deleted
      b.array().delete(0, 1)
      await waitConverged([a, b])

      const before = readWireFile(file)
      const plain = Y.mergeUpdates(before.records)
      const r = await api(srv, `/${room}/compact`, { method: 'POST' })
      assert.equal(r.status, 200, `POST compact: ${r.status} ${r.text}`)
      const after = readWireFile(file)
      assert.equal(after.records.length, 1)
      const record = after.records[0]
      t.diagnostic(`file ${before.size} → ${after.size} bytes; Yjs's mergeUpdates of the records: ${plain.length}; Yjs's own gc'd state: ${Y.encodeStateAsUpdate(a.doc).length}`)
      assert.ok(record.length < plain.length * 0.5, `the compacted record (${record.length} bytes) drops the deleted content that Yjs's mergeUpdates keeps (${plain.length})`)

      // No deleted item keeps text, values or a format; the deletes are all there.
      const decoded = Y.decodeUpdate(record)
      const deleted = (s) => (decoded.ds.clients.get(s.id.client) || []).some((d) => d.clock <= s.id.clock && s.id.clock + s.length <= d.clock + d.len)
      const kept = decoded.structs.filter((s) => s instanceof Y.Item && deleted(s) && !(s.content instanceof Y.ContentDeleted) && !(s.content instanceof Y.ContentType))
      assert.deepEqual(kept.map((s) => s.content.constructor.name), [], 'deleted items written with ContentDeleted')
      assert.deepEqual(Y.decodeUpdate(plain).ds, decoded.ds, 'the same delete set')
      assert.equal(docDiff(a.doc, docFromWireFile(file), ROOTS), null, 'the compacted file holds the clients\' document')

      // A late joiner gets the compacted state, edits around the deleted text, and everyone converges.
      const c = await connectClient(srv.wsBase, room, { name: 'gc-late' })
      clients.push(c)
      await waitConverged([a, b, c])
      assert.equal(docDiff(a.doc, c.doc, ROOTS), null)
      c.text().insert(10, 'LATE ')
      c.text().delete(2, 3)
      a.text().insert(a.text().length, ' tail')
      c.map().set('big', 'from c')
      await waitConverged([a, b, c])
      assert.equal(docDiff(a.doc, c.doc, ROOTS), null)
      assert.ok(c.text().toString().includes('LATE '), c.text().toString())
    } finally {
      await destroyAll(clients)
    }
  }))

  // Compaction joins items and drops deleted content, and Yjs must place every item as it
  // did before. Offline editing makes the hard cases: clients typing at the same position
  // at once (items with the same origin, ordered by YATA), typing runs that compaction
  // joins, deletes across other clients' text, and edits after each compaction.
  test('offline edits, reconnects and compactions: late joiners and the file hold the clients\' document', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('gcx')
    const file = roomFile(srv.dataDir, room)
    const clients = await connectClients(srv.wsBase, room, 3, { namePrefix: 'gcx-' })
    const gen = prng.create(6)
    try {
      for (let round = 0; round < 6; round++) {
        clients.forEach((c) => c.disconnect())
        for (const c of clients) {
          const text = c.text()
          for (let op = 0; op < 8; op++) {
            const kind = prng.int32(gen, 0, 9)
            if (kind <= 4 || text.length < 5) { // type a run, one character per update
              let at = prng.int32(gen, 0, text.length)
              for (const ch of prng.word(gen, 1, 8) + (kind === 0 ? '😀' : '')) { text.insert(at, ch); at += ch.length }
            } else if (kind <= 6) {
              const at = prng.int32(gen, 0, text.length - 2)
              text.delete(at, prng.int32(gen, 1, Math.min(6, text.length - at)))
            } else if (kind === 7) {
              text.format(prng.int32(gen, 0, text.length - 2), 2, { bold: prng.bool(gen) || null })
            } else {
              c.map().set('k' + prng.int32(gen, 0, 2), prng.word(gen, 1, 5))
              const arr = c.array()
              if (arr.length > 2 && prng.bool(gen)) arr.delete(prng.int32(gen, 0, arr.length - 1), 1)
              else arr.insert(prng.int32(gen, 0, arr.length), [prng.int32(gen, 0, 99), prng.word(gen, 1, 3)])
            }
          }
        }
        clients.forEach((c) => c.connect())
        await waitConverged(clients, { timeout: 15000 })
        // Online: x types at p, y types right after it, x types between the two. x's two
        // items then chain by clock and origin but not by right origin: joining them
        // would let YATA order x's second item and y's by client ID.
        for (const [x, y] of [[0, 1], [1, 2], [2, 0]]) {
          const p = prng.int32(gen, 0, clients[x].text().length)
          clients[x].text().insert(p, 'x')
          await waitConverged(clients, { timeout: 15000 })
          clients[y].text().insert(p + 1, 'Y')
          await waitConverged(clients, { timeout: 15000 })
          clients[x].text().insert(p + 1, 'z')
          await waitConverged(clients, { timeout: 15000 })
          assert.equal(clients[x].text().toString().slice(p, p + 3), 'xzY')
        }
        const r = await api(srv, `/${room}/compact`, { method: 'POST' })
        assert.equal(r.status, 200, `POST compact: ${r.status} ${r.text}`)
        assert.equal(docDiff(clients[0].doc, docFromWireFile(file), ROOTS), null, `round ${round}: the compacted file holds the clients' document`)
        const late = await connectClient(srv.wsBase, room, { name: `gcx-late${round}` })
        try {
          await waitConverged([clients[0], late], { timeout: 15000 })
          assert.equal(docDiff(clients[0].doc, late.doc, ROOTS), null, `round ${round}: a late joiner`)
        } finally {
          await late.destroy()
        }
      }
      t.diagnostic(`text after 6 rounds: ${clients[0].text().length} characters; file ${readWireFile(file).size} bytes`)
    } finally {
      await destroyAll(clients)
    }
  }))

  // An operator's compaction of a busy room. Under fsync always there is nearly always an
  // update waiting for the group fsync; compacting must not fail for that (it is at most
  // one fsync away), and certainly not with a 500 Internal Server Error.
  test('POST .../compact while clients write (fsync always) succeeds every time', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('cmpbusy')
    const clients = await connectClients(srv.wsBase, room, 3, { namePrefix: 'cmpbusy-' })
    let stop = false
    const writers = clients.map(async (c, i) => {
      let n = 0
      while (!stop) { c.text().insert(0, `w${i}:${n++};`); await sleep(2) }
    })
    const answers = {}
    try {
      for (let i = 0; i < 30; i++) {
        const r = await api(srv, `/${room}/compact`, { method: 'POST', timeout: 5000 })
        const k = r.status === 200 ? '200' : `${r.status} ${r.text.trim()}`
        answers[k] = (answers[k] || 0) + 1
        await sleep(10)
      }
    } finally {
      stop = true
      await Promise.all(writers)
    }
    try {
      t.diagnostic(`answers to 30 POST compact under writes: ${JSON.stringify(answers)}`)
      await waitConverged(clients)
      assert.equal(docDiff(clients[0].doc, docFromWireFile(roomFile(srv.dataDir, room)), ROOTS), null, 'the file holds the clients\' doc')
      assert.deepEqual(answers, { 200: 30 }, `every POST compact of a busy room must succeed; answers: ${JSON.stringify(answers)}`)
    } finally {
      await destroyAll(clients)
    }
  }))

  test('POST .../close closes every client with 1012; y-websocket reconnects and resyncs', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('cls')
    const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'cls-' })
    const other = await connectClient(srv.wsBase, freshRoom('cls-other'), { name: 'cls-other' })
    try {
      writeSample(a, 'before close')
      await waitConverged([a, b])
      const r = await api(srv, `/${room}/close`, { method: 'POST' })
      assert.equal(r.status, 200, `POST close: ${r.status} ${r.text}`)
      assert.deepEqual(r.json, { closed: 2 })
      await waitFor(() => a.closes.some((c) => c.code === 1012) && b.closes.some((c) => c.code === 1012),
        { timeout: 5000, message: 'both clients to be closed with 1012', describe: () => `${a.describe()}\n${b.describe()}` })
      t.diagnostic(`close events: ${JSON.stringify(a.closes)}`)
      // edits while (possibly) disconnected are sent on reconnect
      a.text().insert(0, 'offline a;')
      b.map().set('offline', 'b')
      await waitFor(() => a.synced && b.synced && a.provider.wsconnected && b.provider.wsconnected,
        { timeout: 10000, message: 'both clients to reconnect and resync', describe: () => `${a.describe()}\n${b.describe()}` })
      await waitConverged([a, b])
      assert.ok(a.text().toString().startsWith('offline a;'))
      assert.equal(a.map().get('offline'), 'b')
      // the other room was not touched
      assert.equal(other.closes.length, 0, `the other room's client was closed: ${other.describe()}`)
      const info = roomsOf(await listed(srv))[room]
      assert.equal(info.connections, 2)
    } finally {
      await destroyAll([a, b, other])
    }
  }))

  test('errors: unknown room 404 (nothing created), bad key 400, wrong method 405, all JSON {"error"}', { timeout: 30000 }, run(async (t, srv) => {
    const ghost = freshRoom('nope')
    const room = freshRoom('err')
    const c = await connectClient(srv.wsBase, room, { name: 'err' })
    try {
      c.text().insert(0, 'x')
      await sleep(100)
      for (const [m, p] of [['GET', ''], ['GET', '/update'], ['POST', '/compact'], ['POST', '/close']]) {
        assertApiError(await api(srv, `/${ghost}${p}`, { method: m }), 404, `${m} ${ghost}${p}`)
      }
      assertApiError(await api(srv, `/${encodeURIComponent('notes/' + ghost)}`), 404, 'GET of a missing slashed key')
      assert.ok(!fs.existsSync(roomFile(srv.dataDir, ghost)), 'looking at a missing room created its file')
      assert.ok(!fs.existsSync(fileOfKey(srv.dataDir, 'notes/' + ghost)))
      assert.ok(!roomsOf(await listed(srv))[ghost], 'looking at a missing room loaded it')
      // no stray files at all
      const files = fs.readdirSync(srv.dataDir).filter((f) => f.includes('nope'))
      assert.deepEqual(files, [])

      const bad = [
        ['NUL in the key', '/a%00b'],
        ['a .. segment', `/${encodeURIComponent('a/../b')}`],
        ['a . segment', `/${encodeURIComponent('a/./b')}`],
        ['.. in a slashed key', `/${encodeURIComponent('notes/..')}`]
      ]
      for (const [what, p] of bad) {
        const r = await api(srv, p)
        t.diagnostic(`${what} (${p}): ${r.status} ${r.text.trim()}`)
        assertApiError(r, 400, what)
      }
      // %2E%2E alone: Caddy's admin router cleans the path /wiredb/rooms/.. to /wiredb/
      // before the wiredb handler sees a key, so this is "no such endpoint" (404), not 400
      const dots = await api(srv, '/%2E%2E')
      t.diagnostic(`.. alone (/%2E%2E): ${dots.status} ${dots.text.trim()}`)
      assert.ok(dots.status === 400 || dots.status === 404, `/%2E%2E: ${dots.status} ${dots.text}`)
      assert.ok(dots.json && typeof dots.json.error === 'string', dots.text)
      assert.deepEqual(fs.readdirSync(srv.dataDir).filter((f) => f.startsWith('.')), [], 'no dot files in the data dir')

      const wrong = [
        ['POST', ''], ['DELETE', ''], ['PUT', `/${room}`], ['POST', `/${room}`], ['DELETE', `/${room}`],
        ['POST', `/${room}/update`], ['GET', `/${room}/compact`], ['GET', `/${room}/close`]
      ]
      for (const [m, p] of wrong) {
        assertApiError(await api(srv, p, { method: m }), 405, `${m} /wiredb/rooms${p}`)
      }
      assertApiError(await api(srv, `/${room}/explode`, { method: 'POST' }), 404, 'unknown action')
      assertApiError(await api(srv, `/${room}/close/now`, { method: 'POST' }), 404, 'three segments')
      assertApiError(await httpBuffer(`${srv.adminUrl}/wiredb/other`), 404, 'GET /wiredb/other')
      // the room is untouched by all this
      assert.equal(c.closes.length, 0, c.describe())
      assert.equal(roomsOf(await listed(srv))[room]?.connections, 1)
    } finally {
      await destroyAll([c])
    }
  }))

  test('a stored room that is not loaded can be read (loaded for it, unloaded again)', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('cold')
    const c = await connectClient(srv.wsBase, room, { name: 'cold' })
    writeSample(c, 'cold')
    await sleep(100)
    const doc = copyDoc(c.doc)
    await destroyAll([c])
    await waitFor(async () => !roomsOf(await listed(srv))[room], { timeout: 8000, message: 'the room to unload (room_idle_timeout 1s)' })
    const r = await api(srv, `/${room}`)
    assert.equal(r.status, 200, `${r.status} ${r.text}`)
    assertRendered(r.json, doc, 'GET of an unloaded room')
    const u = await api(srv, `/${room}/update`)
    const d = new Y.Doc()
    Y.applyUpdate(d, new Uint8Array(u.body))
    assert.equal(docDiff(doc, d, ROOTS), null)
    await waitFor(async () => !roomsOf(await listed(srv))[room], { timeout: 8000, message: 'the room to unload again' })
  }))
})

describe('admin API with two data directories', { skip: SKIP }, () => {
  let server
  let dataDir2
  before(async () => {
    const srv = new TestServer({ admin: true })
    dataDir2 = path.join(srv.tmpDir, 'data2')
    srv.opts.siteDirectives = ['@other path /other/*', 'wiredb @other {', `\tdata_dir ${dataDir2}`, '}']
    await srv.start()
    server = srv
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)

  test('?data_dir= picks the directory; without it a room request is 400; an unused one 404', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('dd')
    const a = await connectClient(srv.wsBase, room, { name: 'dd-1' })
    const b = await connectClient(`ws://127.0.0.1:${srv.port}/other`, room, { name: 'dd-2' })
    try {
      a.text().insert(0, 'in data')
      b.text().insert(0, 'in data2')
      await sleep(200)
      const list = (await httpBuffer(`${srv.adminUrl}/wiredb/rooms`)).json
      t.diagnostic(JSON.stringify(list))
      assert.deepEqual(list.map((d) => d.data_dir).sort(), [srv.dataDir, dataDir2].sort())
      for (const d of list) assert.deepEqual(d.rooms.map((r) => r.key), [room], `${d.data_dir}: rooms`)

      assertApiError(await httpBuffer(`${srv.adminUrl}/wiredb/rooms/${room}`), 400, 'a room without ?data_dir= when two are in use')
      for (const [dir, text] of [[srv.dataDir, 'in data'], [dataDir2, 'in data2']]) {
        const r = await httpBuffer(`${srv.adminUrl}/wiredb/rooms/${room}?data_dir=${encodeURIComponent(dir)}`)
        assert.equal(r.status, 200, `${dir}: ${r.status} ${r.text}`)
        assert.equal(r.json.text?.value, text, `${dir}: ${r.text}`)
      }
      assertApiError(await httpBuffer(`${srv.adminUrl}/wiredb/rooms/${room}?data_dir=${encodeURIComponent(srv.tmpDir)}`), 404, 'an unused data_dir')
      const c = await httpBuffer(`${srv.adminUrl}/wiredb/rooms/${room}/close?data_dir=${encodeURIComponent(dataDir2)}`, { method: 'POST' })
      assert.deepEqual(c.json, { closed: 1 })
      await waitFor(() => b.closes.some((x) => x.code === 1012), { timeout: 5000, message: 'b closed with 1012' })
      assert.equal(a.closes.length, 0, 'the same key in the other directory is another room')
    } finally {
      await destroyAll([a, b])
    }
  }))
})

// ---------------------------------------------------------------------------

const M = (name) => `caddy_wiredb_${name}`
const val = (m, key) => m.get(key) ?? 0
const sumOf = (m, prefix) => [...m.entries()].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0)

describe('metrics on the admin /metrics', { skip: SKIP }, () => {
  let server
  before(async () => { server = await startServer({ admin: true, wiredbDirectives: ['fsync always', 'room_idle_timeout 1s'] }) })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)

  test('caddy_wiredb_* series follow connections, rooms, traffic, rejections, appends, fsyncs, compactions and loads', { timeout: 60000 }, run(async (t, srv) => {
    const m0 = await scrapeMetrics(srv)
    const names = [...new Set([...m0.keys()].filter((k) => k.startsWith('caddy_wiredb_')).map((k) => k.split('{')[0]))].sort()
    t.diagnostic(`series: ${names.join(' ')}`)
    for (const n of ['connections_open', 'rooms_loaded', 'file_bytes']) {
      assert.ok(m0.has(M(n)), `no ${M(n)} in /metrics`)
      assert.equal(m0.get(M(n)), 0, `${M(n)} before any connection`)
    }
    for (const n of ['append_seconds', 'fsync_seconds', 'compaction_seconds', 'room_load_seconds']) {
      assert.ok(m0.has(M(`${n}_count`)), `no ${M(n)} histogram in /metrics`)
    }
    assert.ok(m0.has(`${M('rejected_total')}{reason="malformed"}`), 'rejected_total{reason="malformed"} is exported at 0')

    const roomA = freshRoom('mA')
    const roomB = freshRoom('mB')
    const a = await connectClients(srv.wsBase, roomA, 2, { namePrefix: 'mA-' })
    const b = await connectClient(srv.wsBase, roomB, { name: 'mB' })
    const clients = [...a, b]
    try {
      await waitFor(async () => {
        const m = await scrapeMetrics(srv)
        return m.get(M('connections_open')) === 3 && m.get(M('rooms_loaded')) === 2
      }, { timeout: 5000, message: 'connections_open 3 and rooms_loaded 2' })
      const m1 = await scrapeMetrics(srv)
      assert.ok(val(m1, M('room_load_seconds_count')) - val(m0, M('room_load_seconds_count')) >= 2, 'room_load_seconds counts the two loads')

      const EDITS = 30
      for (let i = 0; i < EDITS; i++) {
        a[0].text().insert(a[0].text().length, `e${i};`)
        if (i % 10 === 0) await sleep(10)
      }
      b.map().set('k', 'v')
      a[0].awareness.setLocalStateField('user', { name: 'a0' })
      await waitConverged(a)
      await waitFor(() => a[1].awareness.getStates().get(a[0].doc.clientID)?.user?.name === 'a0', { message: 'awareness at a1' })
      const m2 = await scrapeMetrics(srv)
      const d = (key) => val(m2, key) - val(m1, key)
      const inUpd = `${M('messages_total')}{direction="in",protocol="y-websocket",type="sync_update"}`
      const outUpd = `${M('messages_total')}{direction="out",protocol="y-websocket",type="sync_update"}`
      const inAw = `${M('messages_total')}{direction="in",protocol="y-websocket",type="awareness"}`
      const outAw = `${M('messages_total')}{direction="out",protocol="y-websocket",type="awareness"}`
      t.diagnostic(`in updates +${d(inUpd)}, out updates +${d(outUpd)}, in awareness +${d(inAw)}, out awareness +${d(outAw)}, ` +
        `appends +${d(M('append_seconds_count'))}, fsyncs +${d(M('fsync_seconds_count'))}`)
      assert.ok(d(inUpd) >= 1 && d(inUpd) <= EDITS + 1, `messages_total in sync_update +${d(inUpd)}`)
      assert.ok(d(outUpd) >= 1, `messages_total out sync_update +${d(outUpd)}`)
      assert.ok(d(`${M('message_bytes_total')}{direction="in",protocol="y-websocket",type="sync_update"}`) > d(inUpd), 'message_bytes_total in sync_update grows by more than a byte a message')
      assert.ok(d(`${M('message_bytes_total')}{direction="out",protocol="y-websocket",type="sync_update"}`) > 0, 'message_bytes_total out sync_update grows')
      assert.ok(d(inAw) >= 1 && d(outAw) >= 1, 'awareness messages are counted both ways')
      assert.ok(d(M('append_seconds_count')) >= d(inUpd), `append_seconds_count +${d(M('append_seconds_count'))} for ${d(inUpd)} inbound updates`)
      assert.ok(d(M('append_seconds_sum')) > 0, 'append_seconds_sum grows')
      assert.ok(d(M('fsync_seconds_count')) >= 1, 'fsync always: fsync_seconds counts fsyncs')
      // the file size gauge is the sum of the loaded rooms' file sizes
      const sizes = () => fs.statSync(roomFile(srv.dataDir, roomA)).size + fs.statSync(roomFile(srv.dataDir, roomB)).size
      await waitFor(async () => (await scrapeMetrics(srv)).get(M('file_bytes')) === sizes(),
        { timeout: 5000, message: 'file_bytes to equal the two files\' sizes', describe: () => `files ${sizes()}` })
      assert.ok(m2.get(M('file_bytes')) > 0)

      // a refused upgrade (foreign Origin: 403) opens no connection and loads no room
      const refused = await new Promise((resolve, reject) => {
        const req = http.request(`${srv.url}/rooms/${freshRoom('mRefused')}`, {
          agent: false,
          timeout: 5000,
          headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', Origin: 'http://evil.example' }
        })
        req.on('response', (res) => { res.resume(); resolve(res.statusCode) })
        req.on('upgrade', (_res, sock) => { sock.destroy(); resolve(101) })
        req.on('timeout', () => req.destroy(new Error('no answer within 5000 ms')))
        req.on('error', reject)
        req.end()
      })
      assert.equal(refused, 403)
      const mr = await scrapeMetrics(srv)
      assert.equal(mr.get(M('connections_open')), 3, 'a refused upgrade counts no connection')
      assert.equal(mr.get(M('rooms_loaded')), 2, 'a refused upgrade loads no room')

      // a malformed frame: rejected_total{reason="malformed"} + 1
      const rejMal = `${M('rejected_total')}{reason="malformed"}`
      const rejUns = `${M('rejected_total')}{reason="unsupported"}`
      const raw = await openRaw(srv.roomUrl(roomA))
      await raw.send(new Uint8Array([0, 2, 5, 0xff, 0xff, 0xff, 0xff, 0xff]))
      const close = await raw.waitClose(5000)
      t.diagnostic(`malformed: closed with ${close.code} ${JSON.stringify(close.reason)}`)
      assert.equal(close.code, 1007)
      const raw2 = await openRaw(srv.roomUrl(roomA))
      await raw2.send('a text frame')
      const close2 = await raw2.waitClose(5000)
      assert.equal(close2.code, 1003)
      await waitFor(async () => {
        const m = await scrapeMetrics(srv)
        return val(m, rejMal) === val(m2, rejMal) + 1 && val(m, rejUns) === val(m2, rejUns) + 1 && m.get(M('connections_open')) === 3
      }, { timeout: 5000, message: 'rejected_total malformed +1, unsupported +1, connections back to 3' })

      // a compaction
      const c0 = val(await scrapeMetrics(srv), M('compaction_seconds_count'))
      const r = await httpBuffer(`${srv.adminUrl}/wiredb/rooms/${roomA}/compact`, { method: 'POST' })
      assert.equal(r.status, 200, r.text)
      const m3 = await scrapeMetrics(srv)
      assert.equal(val(m3, M('compaction_seconds_count')) - c0, 1, 'compaction_seconds counts the compaction')
      assert.ok(val(m3, M('compaction_seconds_sum')) > 0)
      await waitFor(async () => (await scrapeMetrics(srv)).get(M('file_bytes')) === sizes(),
        { timeout: 5000, message: 'file_bytes to follow the compaction', describe: () => `files ${sizes()}` })

      // everyone leaves: the gauges go back to zero once the rooms unload
      await destroyAll(clients)
      await waitFor(async () => {
        const m = await scrapeMetrics(srv)
        return m.get(M('connections_open')) === 0 && m.get(M('rooms_loaded')) === 0 && m.get(M('file_bytes')) === 0
      }, { timeout: 8000, message: 'connections_open, rooms_loaded and file_bytes back to 0', describe: () => 'see /metrics' })
      const m4 = await scrapeMetrics(srv)
      assert.ok(sumOf(m4, `${M('messages_total')}{direction="in"`) > sumOf(m0, `${M('messages_total')}{direction="in"`))
    } finally {
      await destroyAll(clients)
    }
  }))
})

// ---------------------------------------------------------------------------

test('caddy wiredb inspect / export --json read a file the server wrote (after a graceful stop)', { timeout: 60000, skip: SKIP }, async (t) => {
  const srv = await startServer({ wiredbDirectives: ['compact 1000000'] })
  try {
    await withServer(() => srv, async (t2) => {
      const room = freshRoom('cli')
      const file = roomFile(srv.dataDir, room)
      const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'cli-' })
      let doc
      try {
        writeSample(a, 'cli')
        for (let i = 0; i < 10; i++) b.text().insert(b.text().length, ` b${i}`)
        await waitConverged([a, b])
        doc = copyDoc(a.doc)
      } finally {
        await destroyAll([a, b])
      }
      const stop = await srv.stop()
      assert.ok(stop.graceful, `the server did not stop within 10 s: ${JSON.stringify(stop)}`)
      assert.equal(stop.code, 0, `caddy exited with ${JSON.stringify(stop)}`)
      assert.equal(docDiff(doc, docFromWireFile(file), ROOTS), null, 'the file holds the clients\' doc')

      const ins = await caddyCli(['wiredb', 'inspect', file])
      t2.diagnostic(`inspect (exit ${ins.code}):\n${ins.stdout}${ins.stderr}`)
      assert.equal(ins.code, 0, `inspect exits 0 for a valid file: ${ins.stdout}${ins.stderr}`)
      const insJ = await caddyCli(['wiredb', 'inspect', file, '--json'])
      assert.equal(insJ.code, 0, insJ.stderr)
      const report = JSON.parse(insJ.stdout)
      t2.diagnostic(`inspect --json keys: ${Object.keys(report).join(', ')}`)
      const parsed = readWireFile(file)
      assert.equal(report.status, 'ok', JSON.stringify(report))
      assert.equal(report.version, '0.0.1')
      assert.equal(report.size, parsed.size, 'inspect: size')
      assert.equal(report.records, parsed.records.length, 'inspect: records')
      const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
      assert.equal(report.document.clients, sv.size, 'inspect: clients')
      assert.deepEqual(Object.fromEntries(report.document.stateVector.map((e) => [e.client, e.clock])),
        Object.fromEntries([...sv.entries()]), 'inspect: state vector')
      assert.deepEqual(report.document.roots.map((r) => `${r.name}:${r.type}`).sort(), ['array:Array', 'map:Map', 'text:Text'])
      assert.ok(report.document.deletedItems > 0, 'inspect: the sample has deletions')

      const exp = await caddyCli(['wiredb', 'export', file, '--json'])
      assert.equal(exp.code, 0, `export: ${exp.stderr}`)
      t2.diagnostic(`export --json: ${exp.stdout.trim()}`)
      assertRendered(JSON.parse(exp.stdout), doc, 'caddy wiredb export --json')

      // export --update, applied to a fresh doc, is the clients' doc
      const out = path.join(srv.tmpDir, 'export.update')
      const expU = await caddyCli(['wiredb', 'export', file, '--update', '-o', out])
      assert.equal(expU.code, 0, expU.stderr)
      const d = new Y.Doc()
      Y.applyUpdate(d, new Uint8Array(fs.readFileSync(out)))
      assert.equal(docDiff(doc, d, ROOTS), null)
      // the tools did not modify the file
      assert.equal(docDiff(doc, docFromWireFile(file), ROOTS), null)
    })(t)
  } finally {
    await srv.close()
  }
})
