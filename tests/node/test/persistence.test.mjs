// Persistence and restarts (DESIGN §5: WireDB's file format, the durability contract).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { startServer, withServer, caddyOnly } from '../lib/server.js'
import { Y, connectClient, connectClients, destroyAll, freshRoom, waitFor, waitConverged, assertConverged, docDiff } from '../lib/clients.js'
import { roomFile, readWireFile, docFromWireFile } from '../lib/wirefile.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

const ROOTS = { text: 'text', map: 'map', array: 'array', prosemirror: 'xml' }

function copyDoc (doc) {
  const d = new Y.Doc()
  Y.applyUpdate(d, Y.encodeStateAsUpdate(doc))
  return d
}

function someEdits (c, tag) {
  c.text().insert(c.text().length, `${tag} text. `)
  c.text().format(0, 3, { bold: true })
  c.map().set(tag, { at: tag, list: [1, 2, 3] })
  c.array().push([tag, 42])
  const p = new Y.XmlElement('paragraph')
  p.setAttribute('data-tag', tag)
  p.insert(0, [new Y.XmlText(`${tag} paragraph`)])
  c.xml().insert(c.xml().length, [p])
}

test('persistence: content survives a graceful restart; the room file is WireDB\'s format', { timeout: 90000, skip: caddyOnly('the reference server keeps documents in memory only') }, run(async (t, srv) => {
  const room = freshRoom('persist')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'persist-' })
  let ref, fresh
  try {
    someEdits(a, 'a1')
    someEdits(b, 'b1')
    a.text().delete(0, 2) // deletions must persist too
    await waitConverged([a, b], { roots: ROOTS })
    ref = copyDoc(a.doc)
  } finally {
    await destroyAll([a, b])
  }
  const stopped = await srv.stop()
  t.diagnostic(`stop: ${JSON.stringify(stopped)}`)
  assert.ok(stopped.graceful, 'the server exits within 10 s of SIGTERM')

  const file = roomFile(srv.dataDir, room)
  assert.ok(fs.existsSync(file), `room file ${file} exists; data dir has ${JSON.stringify(fs.readdirSync(srv.dataDir))}`)
  const parsed = readWireFile(file)
  t.diagnostic(`room file: ${parsed.size} bytes, ${parsed.records.length} record(s), torn tail ${parsed.torn} bytes`)
  assert.equal(parsed.torn, 0, 'no torn record after a graceful stop')
  assert.ok(parsed.records.length >= 1)
  const fromFile = docFromWireFile(file)
  assert.equal(docDiff(ref, fromFile, ROOTS), null, 'the file holds exactly what the clients had')

  await srv.start()
  try {
    fresh = await connectClient(srv.wsBase, room, { name: 'persist-fresh' })
    assertConverged([ref, fresh.doc], ROOTS)
    // and the room keeps working after the restart
    fresh.map().set('after', 'restart')
    const again = await connectClient(srv.wsBase, room, { name: 'persist-again' })
    try {
      await waitFor(() => again.map().get('after') === 'restart', { message: 'edit after restart to be seen' })
    } finally { await again.destroy() }
  } finally {
    await destroyAll([fresh])
  }
}))

test('durability: after kill -9, nothing that a peer had seen is lost', { timeout: 90000, skip: caddyOnly('the reference server keeps documents in memory only') }, run(async (t, srv) => {
  const room = freshRoom('kill9')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'kill9-' })
  let seen, fresh
  try {
    for (let i = 0; i < 20; i++) someEdits(a, `a${i}`)
    a.map().set('last', 'edit')
    await waitFor(() => b.map().get('last') === 'edit', { message: 'b to see a\'s last edit' })
    seen = copyDoc(b.doc)
    // written (write(2)) before relayed: the file already has it, even if not fsynced
    const parsed = readWireFile(roomFile(srv.dataDir, room))
    const doc = new Y.Doc()
    for (const r of parsed.records) Y.applyUpdate(doc, r)
    assert.equal(doc.getMap('map').get('last'), 'edit', 'what b has seen is already in the room file')
    await srv.kill9()
  } finally {
    await destroyAll([a, b])
  }
  await srv.start()
  try {
    fresh = await connectClient(srv.wsBase, room, { name: 'kill9-fresh' })
    assertConverged([seen, fresh.doc], ROOTS)
  } finally {
    await destroyAll([fresh])
  }
}))

test('clients reconnect by themselves after a server restart; edits made meanwhile converge', { timeout: 90000 }, run(async (t, srv) => {
  const room = freshRoom('reconnect')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'rec-' })
  let fresh
  try {
    someEdits(a, 'before')
    await waitConverged([a, b], { roots: ROOTS })
    await srv.stop()
    await waitFor(() => !a.provider.wsconnected && !b.provider.wsconnected, { message: 'clients to notice the stop' })
    // closed by the server going away: not a code that stops y-websocket from reconnecting
    t.diagnostic(`close seen by a: ${JSON.stringify(a.closes.at(-1))}`)
    someEdits(a, 'while-down-a')
    someEdits(b, 'while-down-b')
    await srv.start()
    await a.waitSynced(15000)
    await b.waitSynced(15000)
    await waitConverged([a, b], { roots: ROOTS })
    fresh = await connectClient(srv.wsBase, room, { name: 'rec-fresh' })
    assertConverged([a, fresh], ROOTS)
  } finally {
    await destroyAll([a, b, fresh])
  }
}))

test('room keys with special characters, different case and great length are kept apart across a restart', { timeout: 90000, skip: caddyOnly('the reference server keeps documents in memory only') }, run(async (t, srv) => {
  const p = freshRoom('keys')
  // y-websocket appends the room name to the URL as is; the URL parser percent-encodes what it must
  const names = [`${p}/a/b`, `${p}/a b`, `${p}/ü-ñ`, `${p}/a.b`, `${p}/Upper`, `${p}/upper`, `${p}/` + 'long'.repeat(50), `${p}/` + 'long'.repeat(50) + 'x']
  const all = []
  try {
    for (const name of names) {
      const c = await connectClient(srv.wsBase, name, { name: `keys:${name.slice(p.length, p.length + 12)}` })
      all.push(c)
      c.text().insert(0, `content of ${name}`)
    }
    for (const [i, name] of names.entries()) {
      const o = await connectClient(srv.wsBase, name, { name: `keys-o:${i}` })
      all.push(o)
      assert.equal(o.text().toString(), `content of ${name}`)
    }
  } finally {
    await destroyAll(all)
  }
  await srv.restart()
  t.diagnostic(`files: ${JSON.stringify(fs.readdirSync(srv.dataDir).filter((f) => f.includes(encodeURIComponent(p).slice(0, 10)) || f.startsWith('keys')))}`)
  const again = []
  try {
    // all at once: concurrent loads of different rooms
    const cs = await Promise.all(names.map((name, i) => connectClient(srv.wsBase, name, { name: `keys-r:${i}` })))
    again.push(...cs)
    for (const [i, name] of names.entries()) assert.equal(cs[i].text().toString(), `content of ${name}`, `room ${name} after restart`)
  } finally {
    await destroyAll(again)
  }
}))

test('concurrent joins to a room being loaded from its file all get the full state', { timeout: 90000, skip: caddyOnly('the reference server keeps documents in memory only') }, run(async (t, srv) => {
  const room = freshRoom('load')
  let ref
  const a = await connectClient(srv.wsBase, room, { name: 'load-a' })
  try {
    for (let i = 0; i < 300; i++) a.array().push([i])
    someEdits(a, 'load')
    const b = await connectClient(srv.wsBase, room, { name: 'load-b' })
    await waitConverged([a, b], { roots: ROOTS }); await b.destroy()
    ref = copyDoc(a.doc)
  } finally {
    await destroyAll([a])
  }
  await srv.restart()
  const cs = []
  try {
    const joined = await Promise.all(Array.from({ length: 12 }, (_, i) => connectClient(srv.wsBase, room, { name: `load-${i}` })))
    cs.push(...joined)
    for (const c of joined) assertConverged([ref, c.doc], ROOTS)
  } finally {
    await destroyAll(cs)
  }
}))

test('room keys that are empty, contain NUL or a ".." segment are refused; nothing is written outside data_dir', { timeout: 30000, skip: caddyOnly('the reference server accepts any path') }, run(async (t, srv) => {
  const { rawUpgrade } = await import('../lib/raw.js')
  // (/rooms/ names no room, but is upgraded: Hocuspocus providers connect there and name their
  // rooms in their messages; a y-websocket client there is closed with 1008, tests/node/test/
  // hocuspocus-routes.test.mjs)
  const paths = ['/rooms/..%2F..%2Fescape1', '/rooms/a/../../escape2', '/rooms/a/%2e%2e/%2e%2e/escape3', '/rooms/x%00y', '/rooms/' + 'k'.repeat(5000)]
  for (const p of paths) {
    const r = await rawUpgrade(srv.port, p)
    t.diagnostic(`${p.slice(0, 60)} -> ${r.statusLine}`)
    assert.notEqual(r.status, 101, `${p.slice(0, 60)} must not be upgraded into a room (got ${r.statusLine})`)
  }
  const outside = []
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = `${dir}/${e.name}`
      if (f === srv.dataDir) continue
      if (e.isDirectory()) walk(f)
      else if (/escape|\.y$/.test(e.name)) outside.push(f)
    }
  }
  walk(srv.tmpDir)
  assert.deepEqual(outside, [], 'no room file outside data_dir')
}))

test('a room unloaded after its idle timeout is compacted and reloads with its content', { timeout: 90000, skip: caddyOnly('needs wiredb\'s room_idle_timeout') }, async (t) => {
  const s2 = await startServer({ wiredbDirectives: ['room_idle_timeout 300ms'] })
  try {
    await withServer(() => s2, async (t2, srv) => {
      const room = freshRoom('idle')
      const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'idle-' })
      let ref
      try {
        for (let i = 0; i < 30; i++) someEdits(i % 2 ? a : b, `e${i}`)
        await waitConverged([a, b], { roots: ROOTS })
        ref = copyDoc(a.doc)
      } finally {
        await destroyAll([a, b])
      }
      const file = roomFile(srv.dataDir, room)
      // after the idle timeout the file is header + one merged record
      await waitFor(() => readWireFile(file).records.length === 1, { timeout: 10000, message: 'the room file to be compacted to one record after unload', describe: () => JSON.stringify(readWireFile(file).records.map((r) => r.length)) })
      assert.equal(docDiff(ref, docFromWireFile(file), ROOTS), null, 'the compacted file holds the same document')
      const c = await connectClient(srv.wsBase, room, { name: 'idle-c' })
      try { assertConverged([ref, c.doc], ROOTS) } finally { await c.destroy() }
    })(t)
  } finally {
    await s2.close()
  }
})
