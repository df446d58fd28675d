// Hocuspocus providers and the route's settings (issue 16): a read_only route answers
// "readonly"; `protocols` limits a route to one protocol; any room part of the provider's URL
// is ignored (the document name is the room key); `sessionAwareness` names (`doc\0session`)
// map to room `doc`; rate_limit closes a Hocuspocus socket with 1008; the messages metric
// carries protocol="hocuspocus". One Caddy with several routes on one data_dir.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { TestServer, withServer, caddyOnly } from '../lib/server.js'
import { Y, Client, connectClient, destroyAll, freshRoom, sleep, waitFor } from '../lib/clients.js'
import { openRaw, msgSyncStep1, awarenessPayload } from '../lib/raw.js'
import { roomFile, docFromWireFile } from '../lib/wirefile.js'
import { scrapeMetrics } from '../lib/load.js'
import { tryUpgrade, closeWs } from '../lib/access.js'
import { HpClient, HpRaw, connectHp, destroyHp, hpSocket, hpUrl, hpAuth, hpAwareness, waitSame } from '../lib/hocuspocus.js'

const SKIP = caddyOnly('routes, read_only, protocols, rate_limit and metrics are the wiredb module\'s') ||
  (process.env.WIREDB_HP_SERVER === 'reference' ? 'routes and their settings are the wiredb module\'s' : false)

let server
before(async () => {
  if (SKIP) return
  const srv = new TestServer({ admin: true })
  const route = (name, lines) => [`@${name} path /${name}/*`, `wiredb @${name} {`, `\tdata_dir ${srv.dataDir}`, ...lines.map((l) => '\t' + l), '}']
  srv.opts.siteDirectives = [
    ...route('view', ['read_only']),
    ...route('yonly', ['protocols y-websocket']),
    ...route('hponly', ['protocols hocuspocus']),
    ...route('slow', ['rate_limit 20'])
  ]
  await srv.start()
  server = srv
})
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)
const base = (srv, prefix) => `ws://127.0.0.1:${srv.port}/${prefix}/`

test('a read_only route: the provider is authenticated "readonly", reads live edits, its edits are neither relayed nor stored', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpro')
  const items = []
  try {
    const w = await connectHp(hpUrl(srv), room, { label: 'writer' })
    items.push(w)
    w.text().insert(0, 'doc;')
    await w.waitAcked()
    const v = await connectHp(base(srv, 'view'), room, { label: 'viewer' })
    items.push(v)
    await waitFor(() => v.scopes.length, { message: 'the viewer authenticated' })
    assert.deepEqual(v.scopes, ['readonly'])
    assert.equal(v.text().toString(), 'doc;')
    const before = v.unsynced
    v.text().insert(0, 'EVIL;')
    // barrier: the viewer's awareness, sent after its edit on the same socket, at the writer
    v.awareness.setLocalStateField('user', { name: 'viewer' })
    await waitFor(() => w.awareness.getStates().get(v.doc.clientID)?.user?.name === 'viewer', { message: 'the viewer\'s awareness at the writer' })
    await sleep(300)
    assert.equal(w.text().toString(), 'doc;', 'the viewer\'s edit must not reach the writer')
    assert.ok(v.unsynced > before, 'the dropped edit is not acknowledged')
    await waitFor(() => v.acks().refused >= 1, { message: 'SyncStatus false for the dropped edit', describe: () => `${JSON.stringify(v.acks())} ${v.describe()}` })
    w.text().insert(4, 'live;')
    await waitFor(() => v.text().toString().endsWith('doc;live;'), { message: 'a live edit at the viewer' })
    await w.waitAcked()
    assert.equal(docFromWireFile(roomFile(srv.dataDir, room)).getText('text').toString(), 'doc;live;')
  } finally {
    await destroyHp(items)
  }
}))

test('the document name is the room key: a provider whose URL carries another room part or none (/rooms), and sessionAwareness names (doc\\0session), share the y-websocket room', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpkey')
  const items = []
  try {
    const y = await connectClient(srv.wsBase, room, { name: 'yws' })
    items.push(y)
    const odd = await connectHp(`ws://127.0.0.1:${srv.port}/rooms/not-this-room/at/all`, room, { label: 'odd-url' })
    items.push(odd)
    // the provider's default: its URL's trailing slash stripped (`/rooms`, served by the route too)
    const bare = await connectHp(`ws://127.0.0.1:${srv.port}/rooms/`, room, { preserveTrailingSlash: false, label: 'bare-url' })
    items.push(bare)
    assert.equal(bare.socket.url, `ws://127.0.0.1:${srv.port}/rooms`)
    const socket = hpSocket(hpUrl(srv))
    items.push(socket)
    const s1 = new HpClient(null, room, { socket, sessionAwareness: true, label: 'session-1' })
    const s2 = new HpClient(null, room, { socket, sessionAwareness: true, label: 'session-2' })
    items.push(s1, s2)
    await s1.waitSynced()
    await s2.waitSynced()
    assert.notEqual(s1.provider.effectiveName, room, 'the provider sends doc\\0session')
    odd.text().insert(0, 'odd;')
    bare.xml().insert(0, [new Y.XmlElement('bare')])
    s1.map().set('s1', 1)
    s2.map().set('s2', 2)
    y.map().set('y', 'yws')
    await waitSame([y, odd, bare, s1, s2], { roots: { text: 'text', map: 'map', prosemirror: 'xml' } })
    assert.equal(y.text().toString(), 'odd;')
    assert.equal(y.xml().get(0).nodeName, 'bare')
    assert.deepEqual(y.map().toJSON(), { s1: 1, s2: 2, y: 'yws' })
    await s1.waitAcked(); await s2.waitAcked(); await odd.waitAcked()
    assert.ok(!fs.existsSync(roomFile(srv.dataDir, 'not-this-room')), 'no room from the URL')
    const d = docFromWireFile(roomFile(srv.dataDir, room))
    assert.deepEqual(d.getMap('map').toJSON(), { s1: 1, s2: 2, y: 'yws' })
    // awareness of both sessions reaches y-websocket
    s1.awareness.setLocalStateField('user', { name: 's1' })
    s2.awareness.setLocalStateField('user', { name: 's2' })
    await waitFor(() => y.awareness.getStates().get(s1.doc.clientID)?.user?.name === 's1' && y.awareness.getStates().get(s2.doc.clientID)?.user?.name === 's2',
      { message: 'both sessions\' awareness at y-websocket' })
  } finally {
    await destroyAll(items.filter((x) => x instanceof Client))
    await destroyHp(items)
  }
}))

test('protocols: a y-websocket-only route does not take a provider, a hocuspocus-only route does not take y-websocket (closed with a reason, nothing stored)', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpproto')
  const items = []
  let raw
  try {
    // Hocuspocus on the y-websocket-only route: its base URL names no room (refused before
    // the upgrade), and with a room in the URL the first (Hocuspocus) message closes it
    const r0 = await tryUpgrade(base(srv, 'yonly'))
    if (r0.open) await closeWs(r0.ws)
    t.diagnostic(`upgrade of /yonly/: ${r0.open ? 'open' : `${r0.status} ${JSON.stringify(r0.body.trim())}`}`)
    const hr = await HpRaw.open(`${base(srv, 'yonly')}${room}`)
    await hr.send(hpAuth(room, '')).catch(() => {})
    const hc = await hr.waitClose(5000)
    t.diagnostic(`hocuspocus on /yonly/: ${hc.code} ${JSON.stringify(hc.reason)}; ${hr.describe()}`)
    assert.ok(hc.code >= 1000 && hc.code !== 1006 && hc.reason.length > 0, `closed with a code and a reason: ${JSON.stringify(hc)}`)
    assert.ok(!hr.messages.some((m) => m.type === 'auth' && m.sub === 'authenticated'), 'never authenticated')
    const p = new HpClient(`${base(srv, 'yonly')}${room}`, room, { label: 'provider-on-yonly' })
    items.push(p)
    p.text().insert(0, 'EVIL;')
    await waitFor(() => p.disconnects.length > 0, { message: 'the provider on /yonly/<room> to be disconnected', describe: () => p.describe() })
    t.diagnostic(`provider on /yonly/<room>: ${JSON.stringify(p.disconnects[0])}`)
    assert.equal(p.synced, false)
    assert.deepEqual(p.scopes, [])
    await p.destroy()

    // y-websocket on the hocuspocus-only route
    raw = await openRaw(`${base(srv, 'hponly')}${room}`)
    await raw.send(msgSyncStep1(Y.encodeStateVector(new Y.Doc()))).catch(() => {})
    const yc = await raw.waitClose(5000)
    t.diagnostic(`y-websocket on /hponly/: ${yc.code} ${JSON.stringify(yc.reason)}`)
    assert.ok(yc.code >= 1000 && yc.code !== 1006 && yc.reason.length > 0, `closed with a code and a reason: ${JSON.stringify(yc)}`)
    assert.ok(!raw.messages.some((m) => m.type === 'sync' && m.sub === 'step2'), 'no document sent')

    // and each route takes its own protocol
    const good = await connectHp(base(srv, 'hponly'), room, { label: 'provider-on-hponly' })
    items.push(good)
    good.text().insert(0, 'ok;')
    await good.waitAcked()
    const y = await connectClient(`ws://127.0.0.1:${srv.port}/yonly`, room, { name: 'yws-on-yonly' })
    items.push(y)
    assert.equal(y.text().toString(), 'ok;')
    assert.equal(docFromWireFile(roomFile(srv.dataDir, room)).getText('text').toString(), 'ok;', 'nothing of the refused clients stored')
  } finally {
    if (raw) await raw.end()
    await destroyAll(items.filter((x) => x instanceof Client))
    await destroyHp(items)
  }
}))

test('rate_limit 20: a Hocuspocus socket flooding awareness is closed with 1008 and a reason; the room carries on', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hprate')
  const items = []
  let raw
  try {
    const g = await connectHp(base(srv, 'slow'), room, { label: 'good' })
    const y = await connectClient(srv.wsBase, room, { name: 'yws' })
    items.push(g, y)
    raw = await HpRaw.open(base(srv, 'slow'))
    await raw.authenticate(room, '')
    for (let i = 0; i < 200 && !raw.close; i++) {
      await raw.send(hpAwareness(room, awarenessPayload([{ clientID: 4242, clock: i + 1, state: { flood: i } }]))).catch(() => {})
    }
    const close = await raw.waitClose(5000)
    t.diagnostic(`flood: ${close.code} ${JSON.stringify(close.reason)}`)
    assert.equal(close.code, 1008)
    assert.ok(close.reason.length > 0)
    g.text().insert(0, 'after;')
    y.map().set('y', 1)
    await waitSame([g, y])
    assert.deepEqual(g.closes, [], 'the good provider was not closed')
  } finally {
    if (raw) await raw.end()
    await destroyAll(items.filter((x) => x instanceof Client))
    await destroyHp(items)
  }
}))

test('metrics: caddy_wiredb_messages_total counts Hocuspocus messages with protocol="hocuspocus" (in and out), y-websocket with protocol="y-websocket"', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpmet')
  const items = []
  try {
    const sum = (m, pred) => {
      let s = 0
      for (const [k, v] of m) {
        const mm = /^caddy_wiredb_messages_total\{(.*)\}$/.exec(k)
        if (!mm) continue
        const labels = Object.fromEntries([...mm[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
        if (pred(labels)) s += v
      }
      return s
    }
    const m0 = await scrapeMetrics(srv)
    const h = await connectHp(hpUrl(srv), room, { label: 'h' })
    const y = await connectClient(srv.wsBase, room, { name: 'yws' })
    items.push(h, y)
    for (let i = 0; i < 5; i++) h.map().set(`k${i}`, i)
    await h.waitAcked()
    await waitFor(() => y.map().get('k4') === 4, { message: 'the edits at y' })
    const m1 = await scrapeMetrics(srv)
    const keys = [...m1.keys()].filter((k) => k.startsWith('caddy_wiredb_messages_total{'))
    t.diagnostic(`messages_total series: ${keys.join(' ')}`)
    const d = (pred) => sum(m1, pred) - sum(m0, pred)
    assert.ok(d((l) => l.protocol === 'hocuspocus' && l.direction === 'in') >= 5 + 2, 'Hocuspocus messages in (auth, step 1, updates)')
    assert.ok(d((l) => l.protocol === 'hocuspocus' && l.direction === 'out') >= 5, 'Hocuspocus messages out (auth, step 2, SyncStatus)')
    assert.ok(d((l) => l.protocol === 'y-websocket' && l.direction === 'out') >= 5, 'the provider\'s updates went out to y-websocket')
  } finally {
    await destroyAll(items.filter((x) => x instanceof Client))
    await destroyHp(items)
  }
}))

test('a route with both protocols sends nothing before the client\'s first message (then y-websocket and Hocuspocus are each served)', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpquiet')
  let yraw, hraw
  try {
    yraw = await openRaw(srv.roomUrl(room))
    hraw = await HpRaw.open(hpUrl(srv))
    // an observation window: a greeting would be sent at once
    await sleep(500)
    assert.deepEqual(yraw.messages.map((m) => m.type), [], 'nothing sent to a silent y-websocket socket')
    assert.deepEqual(hraw.messages.map((m) => m.type), [], 'nothing sent to a silent Hocuspocus socket')
    await yraw.send(msgSyncStep1(Y.encodeStateVector(new Y.Doc())))
    await yraw.waitMessage((m) => m.type === 'sync' && m.sub === 'step2', { message: 'y-websocket: step 2 after its step 1' })
    const { scope } = await hraw.authenticate(room, '')
    assert.equal(scope, 'read-write')
  } finally {
    if (yraw) await yraw.end()
    if (hraw) await hraw.end()
  }
}))

test('document names are checked as room keys: a ".." segment, "." and a name over max_room_key_length get authenticationFailed; the socket and its other document go on', { timeout: 30000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hpname')
  const items = []
  try {
    const socket = hpSocket(hpUrl(srv))
    items.push(socket)
    const good = new HpClient(null, room, { socket, label: 'good' })
    items.push(good)
    await good.waitSynced()
    for (const name of [`${room}/../other`, '..', '.', 'x'.repeat(300)]) {
      const c = new HpClient(null, name, { socket, label: `name ${name.slice(0, 20)}` })
      items.push(c)
      const reason = await c.waitAuthFailed()
      t.diagnostic(`${JSON.stringify(name.slice(0, 40))}: ${JSON.stringify(reason)}`)
      assert.ok(reason.length > 0)
      assert.equal(c.synced, false)
      c.text().insert(0, 'EVIL')
    }
    good.text().insert(0, 'still fine')
    await good.waitAcked()
    assert.equal(socket._wiredbTest.opens, 1, 'the socket stayed open')
    assert.deepEqual(good.disconnects, [])
    const names = fs.readdirSync(srv.dataDir)
    assert.ok(!names.some((n) => n.startsWith('other') || n.startsWith('xxxxxxxx')), `no room of a refused name: ${names.join(' ')}`)
  } finally {
    await destroyHp(items)
  }
}))
