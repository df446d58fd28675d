// Hocuspocus providers on wiredb rooms (issue 16), end to end: the unmodified
// @hocuspocus/provider (4.8.0; the core scenarios also with 3.4.4) over `ws` against a real
// Caddy, alone and next to y-websocket clients in the same rooms.
//
// The contract under test: a provider connects to the route's base URL (`/rooms/`); its
// document name is the room key; every token is accepted without `jwt` (scope read-write);
// every step 2 and update a provider sends is acknowledged (SyncStatus) once stored under the
// route's fsync policy, so `unsyncedChanges` returns to 0 (`fsync always`: on disk); updates
// are not echoed, awareness is (and crosses protocols); Close ends one document of a shared
// socket; stateless messages reach the document's other providers; one socket carries at most
// max_documents_per_connection documents; the server pings 4.x providers on a silent socket.
//
// WIREDB_HP_SERVER=reference runs what applies against @hocuspocus/server 4.7.0 in this
// process (no files, no restarts, no y-websocket, no limits: those tests are skipped), to
// check the tests themselves. WIREDB_HP_MAJORS=4 (or 3) limits the provider majors.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { TestServer, withServer, IS_CADDY } from '../lib/server.js'
import { Y, prng, connectClient, destroyAll, freshRoom, sleep, waitFor } from '../lib/clients.js'
import { roomFile, docFromWireFile } from '../lib/wirefile.js'
import {
  MAJORS, HpClient, connectHp, destroyHp, hpSocket, hpUrl, frameDocs, decodeHp, waitSame, copyDoc,
  startReferenceServer, awarenessText
} from '../lib/hocuspocus.js'

const REFERENCE = process.env.WIREDB_HP_SERVER === 'reference'
const SKIP_ALL = !IS_CADDY && !REFERENCE ? 'the y-websocket reference server does not speak Hocuspocus (WIREDB_HP_SERVER=reference runs @hocuspocus/server)' : false
const caddyOnly = (why) => SKIP_ALL || (REFERENCE ? `reference server (@hocuspocus/server): ${why}` : false)
const SEED = Number(process.env.WIREDB_SEED || Date.now() % 1000000)
if (REFERENCE) console.log('# hocuspocus: against the reference @hocuspocus/server')

const ROOTS = { text: 'text', map: 'map', prosemirror: 'xml' }

let server
before(async () => {
  if (SKIP_ALL) return
  if (REFERENCE) { server = await startReferenceServer(); return }
  const srv = new TestServer({ wiredbDirectives: ['fsync always'] })
  // a second route, its own data dir, with a small per-socket document limit
  srv.opts.siteDirectives = [
    '@few path /few/*',
    'wiredb @few {',
    `\tdata_dir ${path.join(srv.tmpDir, 'data-few')}`,
    '\tmax_documents_per_connection 2',
    '}'
  ]
  await srv.start()
  server = srv
})
after(async () => { if (server) await server.close() })

/** the provider URL of the main route */
const URL = () => (REFERENCE ? server.url : hpUrl(server))
/** a test body with the server (its log printed on failure, an unexpected exit a failure) */
const run = (fn) => (REFERENCE ? (t) => fn(t, server) : withServer(() => server, fn))

/** edits of Y.Text, Y.Map and Y.XmlFragment, tagged */
function editAll (c, tag) {
  c.doc.transact(() => {
    c.text().insert(c.text().length, `${tag};`)
    c.map().set(tag, { by: tag, n: c.map().size })
    const p = new Y.XmlElement('paragraph')
    p.setAttribute('data-by', tag)
    const t = new Y.XmlText()
    t.insert(0, `para ${tag}`, { bold: true })
    p.insert(0, [t])
    c.xml().insert(c.xml().length, [p])
  })
}

const xmlParas = (c) => c.xml().toArray().map((p) => p.getAttribute('data-by'))

// ---------------------------------------------------------------------------
// The core scenarios, once per provider major

for (const major of MAJORS) {
  describe(`@hocuspocus/provider ${major}.x`, { skip: SKIP_ALL }, () => {
    test(`v${major}: two providers converge on Y.Text, Y.Map and Y.XmlFragment; synced and authenticated (read-write) fire`, { timeout: 30000 }, run(async (t, srv) => {
      const room = freshRoom(`hp${major}conv`)
      const clients = []
      try {
        const a = await connectHp(URL(), room, { major, label: 'a' })
        clients.push(a)
        const b = await connectHp(URL(), room, { major, label: 'b' })
        clients.push(b)
        for (const c of clients) {
          await waitFor(() => c.scopes.length > 0, { message: `${c.label}: authenticated`, describe: () => c.describe() })
          assert.deepEqual(c.scopes, ['read-write'], `${c.label}: one authenticated event, scope read-write (no jwt on the route)`)
          assert.equal(c.syncedEvents, 1, `${c.label}: one synced event`)
          assert.equal(c.status, 'connected')
          assert.deepEqual(c.authFailures, [])
        }
        // a -> b, b -> a
        editAll(a, 'a1')
        await waitFor(() => b.text().toString() === 'a1;' && b.map().get('a1') && xmlParas(b).join() === 'a1',
          { message: 'a\'s edits at b', describe: () => JSON.stringify(b.doc.toJSON()) })
        editAll(b, 'b1')
        b.xml().get(0).setAttribute('checked', 'by-b')
        await waitFor(() => a.text().toString() === 'a1;b1;' && a.map().get('b1') && a.xml().get(0).getAttribute('checked') === 'by-b',
          { message: 'b\'s edits at a', describe: () => JSON.stringify(a.doc.toJSON()) })
        // concurrent edits of the same positions and keys, many small transactions
        const gen = prng.create(SEED)
        for (let i = 0; i < 40; i++) {
          for (const c of clients) {
            const tx = c.text()
            tx.insert(prng.int32(gen, 0, tx.length), prng.word(gen, 1, 4))
            if (tx.length > 10 && prng.bool(gen)) tx.delete(prng.int32(gen, 0, tx.length - 3), 2)
            c.map().set(`k${prng.int32(gen, 0, 4)}`, `${c.label}${i}`)
            if (i % 10 === 0) editAll(c, `${c.label}-x${i}`)
          }
          if (i % 8 === 0) await sleep(1)
        }
        await waitSame(clients, { roots: ROOTS })
        assert.equal(a.xml().length, 2 + 8, 'paragraphs of both')
        // the edits were acknowledged, each once: one SyncStatus per update, plus one for the
        // step 2 of the first sync (a duplicate would arrive right after the last one)
        await Promise.all(clients.map((c) => c.waitAcked()))
        await sleep(200)
        for (const c of clients) {
          assert.deepEqual(c.acks(), { applied: 1 + c.localUpdates, refused: 0 }, `${c.label}: SyncStatus once per update (${c.localUpdates} updates) and for the first step 2`)
          assert.deepEqual(c.closes, [], `${c.label}: no close`)
        }
      } finally {
        await destroyHp(clients)
      }
    }))

    test(`v${major}: unsyncedChanges returns to 0 after edits and after a 200 KiB edit (fsync always); the data is then in the room file and survives kill -9`, { timeout: 60000 }, run(async (t, srv) => {
      const room = freshRoom(`hp${major}ack`)
      const clients = []
      try {
        const a = await connectHp(URL(), room, { major, label: 'a' })
        clients.push(a)
        const b = await connectHp(URL(), room, { major, label: 'b' })
        clients.push(b)
        await a.waitAcked()
        assert.equal(a.unsynced, 0, 'the first sync is acknowledged')

        editAll(a, 'small')
        a.text().insert(0, 'head;')
        assert.ok(a.unsynced >= 2, `edits are counted until acknowledged (unsyncedChanges ${a.unsynced})`)
        await a.waitAcked()
        const fileText = () => docFromWireFile(roomFile(srv.dataDir, room)).getText('text').toString()
        if (!REFERENCE) {
          // acknowledged under fsync always: in the file now, without waiting for anything else
          assert.equal(fileText(), 'head;small;', 'acknowledged edits are in the room file')
        }

        // 200 KiB in one update
        const gen = prng.create(SEED + 1)
        let big = ''
        while (big.length < 200 * 1024) big += prng.word(gen, 8, 64) + ' '
        big = big.slice(0, 200 * 1024)
        a.text().insert(a.text().length, big)
        assert.ok(a.unsynced >= 1)
        const t0 = Date.now()
        await a.waitAcked(20000)
        t.diagnostic(`200 KiB acknowledged in ${Date.now() - t0} ms`)
        if (!REFERENCE) {
          const ft = fileText()
          assert.equal(ft.length, 'head;small;'.length + big.length, 'the 200 KiB edit is in the room file once acknowledged')
          assert.ok(ft.endsWith(big.slice(-1000)))
        }
        await waitFor(() => b.text().length === a.text().length, { timeout: 10000, message: 'the big edit at b', describe: () => b.describe() })
        await waitSame(clients, { roots: ROOTS })

        // b's own edit, acknowledged, then everyone leaves abruptly (no goodbye needed)
        b.map().set('last', 'b')
        await b.waitAcked()
        for (const c of clients) assert.deepEqual(c.acks(), { applied: 1 + c.localUpdates, refused: 0 }, `${c.label}: one SyncStatus per update and for the first step 2`)
        const want = copyDoc(a.doc)
        Y.applyUpdate(want, Y.encodeStateAsUpdate(b.doc))
        await destroyHp(clients.splice(0))
        if (REFERENCE) return
        await srv.restart({ kill9: true })
        const late = await connectHp(URL(), room, { major, label: 'late' })
        clients.push(late)
        await waitSame([{ doc: want }, late], { roots: ROOTS, message: 'the late joiner to get everything acknowledged before the kill -9' })
        assert.equal(late.map().get('last'), 'b')
      } finally {
        await destroyHp(clients)
      }
    }))

    test(`v${major}: one HocuspocusProviderWebsocket carries two documents apart; detaching or destroying one leaves the other working`, { timeout: 45000 }, run(async (t, srv) => {
      const d1 = freshRoom(`hp${major}sh1`)
      const d2 = freshRoom(`hp${major}sh2`)
      const items = []
      try {
        const socket = hpSocket(URL(), { major })
        items.push(socket)
        const s1 = new HpClient(null, d1, { major, socket, label: 's1' })
        const s2 = new HpClient(null, d2, { major, socket, label: 's2' })
        items.push(s1, s2)
        await s1.waitSynced()
        await s2.waitSynced()
        const p1 = await connectHp(URL(), d1, { major, label: 'p1' }) // peer on d1, own socket
        const p2 = await connectHp(URL(), d2, { major, label: 'p2' }) // peer on d2
        items.push(p1, p2)
        const wsAtStart = s1.ws
        assert.ok(wsAtStart && wsAtStart === s2.ws, 'both documents on one WebSocket')

        editAll(s1, 's1')
        editAll(s2, 's2')
        p1.map().set('p1', true)
        p2.map().set('p2', true)
        await waitSame([s1, p1], { roots: ROOTS, message: 'd1 to converge' })
        await waitSame([s2, p2], { roots: ROOTS, message: 'd2 to converge' })
        assert.equal(s1.text().toString(), 's1;')
        assert.equal(s2.text().toString(), 's2;')
        assert.equal(s1.map().get('p2'), undefined, 'd2\'s edit must not reach d1')
        assert.equal(s2.map().get('p1'), undefined, 'd1\'s edit must not reach d2')
        assert.equal(p1.map().get('s2'), undefined)
        assert.equal(p2.map().get('s1'), undefined)
        await s1.waitAcked()
        await s2.waitAcked()

        // detach s1: its document ends (Close), the socket and s2 carry on
        s1.detach()
        // barrier: the server reads a socket's frames in order, so once s2's next update is
        // acknowledged the Close of d1 before it has been handled
        s2.map().set('after-detach', 1)
        await s2.waitAcked()
        const mark = socket._wiredbTest.frames.length
        p1.text().insert(0, 'p1-after-detach;')
        const p1b = await connectHp(URL(), d1, { major, label: 'p1b' }) // sees p1's edit: the server relayed it
        items.push(p1b)
        await waitFor(() => p1b.text().toString().startsWith('p1-after-detach;'), { message: 'p1\'s edit at p1b' })
        p2.text().insert(0, 'p2-after-detach;')
        await waitFor(() => s2.text().toString().startsWith('p2-after-detach;'), { message: 'd2 still works on the shared socket', describe: () => s2.describe() })
        await sleep(200)
        const leaked = frameDocs(socket, mark).filter((d) => d === d1)
        assert.deepEqual(leaked, [], `after Close of ${d1} the server sent ${leaked.length} more frames of it on that socket`)
        assert.ok(!s1.text().toString().includes('p1-after-detach'), 'the detached document got no update')
        assert.equal(s2.ws, wsAtStart, 'the shared socket was not replaced')
        assert.deepEqual(s2.disconnects, [], 'the shared socket never disconnected')

        // attach s1 again on the same socket: authenticated and synced again, catches up
        s1.attach()
        await waitFor(() => s1.scopes.length === 2, { message: 's1 authenticated again', describe: () => s1.describe() })
        await waitFor(() => s1.text().toString().startsWith('p1-after-detach;'), { message: 's1 catches up after attach', describe: () => s1.describe() })
        await waitSame([s1, p1, p1b], { roots: ROOTS })

        // destroy s2 (provider only; the socket is shared): s1 keeps working on the same socket
        await s2.destroy()
        p1.map().set('after-destroy', 'p1')
        s1.map().set('s1-after-destroy', true)
        await waitFor(() => s1.map().get('after-destroy') === 'p1' && p1.map().get('s1-after-destroy') === true,
          { message: 'd1 works after s2 was destroyed', describe: () => s1.describe() + '\n' + p1.describe() })
        await s1.waitAcked()
        assert.equal(s1.ws, wsAtStart, 'still the same socket')
        assert.equal(socket._wiredbTest.opens, 1, 'the shared socket opened once')
        // s2's awareness left d2 with it
        await waitFor(() => !p2.awareness.getStates().has(s2.doc.clientID), { message: 's2\'s awareness removed at p2', describe: () => awarenessText(p2) })
      } finally {
        await destroyHp(items)
      }
    }))

    test(`v${major}: a late joiner gets everything after the others left${REFERENCE ? '' : ', and again after a Caddy restart'}`, { timeout: 45000 }, run(async (t, srv) => {
      const room = freshRoom(`hp${major}late`)
      const clients = []
      try {
        const a = await connectHp(URL(), room, { major, label: 'a' })
        const b = await connectHp(URL(), room, { major, label: 'b' })
        clients.push(a, b)
        for (let i = 0; i < 20; i++) editAll(i % 2 ? a : b, `e${i}`)
        a.text().delete(0, 3)
        await waitSame(clients, { roots: ROOTS })
        await Promise.all(clients.map((c) => c.waitAcked()))
        const want = copyDoc(a.doc)
        await destroyHp(clients.splice(0))

        const late = await connectHp(URL(), room, { major, label: 'late' })
        clients.push(late)
        // synced = the server's step 2 was applied: nothing more to wait for
        await waitSame([{ doc: want }, late], { roots: ROOTS, timeout: 1, message: 'the late joiner to hold everything once synced' })
        assert.equal(xmlParas(late).length, 20)
        // alone in the room: its update is acknowledged, not echoed; its awareness is echoed
        const mark = late.rec.frames.length
        late.map().set('late', true)
        late.awareness.setLocalStateField('user', { name: 'late' })
        await late.waitAcked()
        await waitFor(() => late.rec.frames.slice(mark).map((f) => decodeHp(f.data)).some((m) => m.type === 'awareness' && m.payload.some((e) => e.clientID === late.doc.clientID && e.state?.user?.name === 'late')),
          { message: 'the lone provider\'s own awareness echoed to it', describe: () => late.describe() })
        await sleep(200)
        const echoed = late.rec.frames.slice(mark).map((f) => decodeHp(f.data)).filter((m) => m.type === 'sync')
        // (the reference server echoes it; our contract says it is not echoed)
        if (!REFERENCE) assert.deepEqual(echoed.map((m) => m.sub), [], 'its own update must not be echoed to it')
        Y.applyUpdate(want, Y.encodeStateAsUpdate(late.doc))
        await destroyHp(clients.splice(0))
        if (REFERENCE) return

        await srv.restart()
        const again = await connectHp(URL(), room, { major, label: 'after-restart' })
        clients.push(again)
        await waitSame([{ doc: want }, again], { roots: ROOTS, timeout: 1, message: 'everything after the restart' })
        assert.equal(again.map().get('late'), true)
      } finally {
        await destroyHp(clients)
      }
    }))

    test(`v${major}: providers ride through a Caddy stop and start: they reconnect, authenticate again, and their offline edits are synced, acknowledged and stored`, { timeout: 45000, skip: caddyOnly('no restart of an in-process server') }, run(async (t, srv) => {
      const room = freshRoom(`hp${major}ride`)
      const clients = []
      try {
        const a = await connectHp(URL(), room, { major, label: 'a' })
        const b = await connectHp(URL(), room, { major, label: 'b' })
        clients.push(a, b)
        editAll(a, 'online')
        await waitSame(clients, { roots: ROOTS })
        await a.waitAcked()
        await srv.stop()
        await waitFor(() => clients.every((c) => c.status !== 'connected' && c.disconnects.length > 0), { message: 'both to notice the stop', describe: () => clients.map((c) => c.describe()).join('\n') })
        t.diagnostic(`closes at the stop: ${JSON.stringify(clients.map((c) => c.disconnects[0]))}`)
        editAll(a, 'offline-a')
        b.text().insert(0, 'offline-b;')
        assert.ok(a.unsynced > 0 && b.unsynced > 0, 'offline edits are unsynced')
        await srv.start()
        await waitFor(() => clients.every((c) => c.scopes.length === 2 && c.synced), { timeout: 15000, message: 'both reconnected and authenticated again', describe: () => clients.map((c) => c.describe()).join('\n') })
        await waitSame(clients, { roots: ROOTS })
        await a.waitAcked()
        await b.waitAcked()
        assert.deepEqual(xmlParas(a).sort(), ['offline-a', 'online'])
        assert.ok(a.text().toString().includes('offline-b;'))
        const d = docFromWireFile(roomFile(srv.dataDir, room))
        assert.equal(d.getText('text').toString(), a.text().toString(), 'the offline edits are in the room file once acknowledged')
      } finally {
        await destroyHp(clients)
      }
    }))

    test(`v${major}: sendStateless reaches the document's other providers, not the sender nor another document on the same socket`, { timeout: 30000 }, run(async (t, srv) => {
      const room = freshRoom(`hp${major}sl`)
      const other = freshRoom(`hp${major}slo`)
      const items = []
      try {
        const a = await connectHp(URL(), room, { major, label: 'a' })
        const b = await connectHp(URL(), room, { major, label: 'b' })
        items.push(a, b)
        const socket = hpSocket(URL(), { major })
        items.push(socket)
        const c = new HpClient(null, room, { major, socket, label: 'c' }) // same doc, shared socket
        const o = new HpClient(null, other, { major, socket, label: 'o' }) // another doc on that socket
        items.push(c, o)
        await c.waitSynced()
        await o.waitSynced()

        a.provider.sendStateless('{"hello":"from a"}')
        await waitFor(() => b.stateless.length === 1 && c.stateless.length === 1, { message: 'a\'s stateless at b and c', describe: () => b.describe() + '\n' + c.describe() })
        assert.deepEqual(b.stateless, ['{"hello":"from a"}'])
        assert.deepEqual(c.stateless, ['{"hello":"from a"}'])
        // barrier for a: an update a sends after its stateless is acknowledged on a's socket
        a.map().set('after-stateless', 1)
        await a.waitAcked()
        await sleep(200)
        assert.deepEqual(a.stateless, [], 'the sender must not get its own stateless message')
        assert.deepEqual(o.stateless, [], 'another document must not get it')

        b.provider.sendStateless('b says hi')
        c.provider.sendStateless('')
        await waitFor(() => a.stateless.length === 2 && b.stateless.length === 2 && c.stateless.length === 2,
          { message: 'b\'s and c\'s stateless messages', describe: () => [a, b, c].map((x) => x.describe()).join('\n') })
        assert.deepEqual(a.stateless.sort(), ['', 'b says hi'])
        assert.deepEqual(b.stateless.sort(), ['', '{"hello":"from a"}'])
        assert.deepEqual(c.stateless.sort(), ['b says hi', '{"hello":"from a"}'])
        assert.deepEqual(o.stateless, [])
      } finally {
        await destroyHp(items)
      }
    }))
  })
}

// ---------------------------------------------------------------------------
// Mixed protocols, keep-alive, the per-socket document limit

test('Hocuspocus (4.x and 3.x) and y-websocket in one room converge, with awareness both ways', { timeout: 30000, skip: caddyOnly('it does not speak y-websocket') }, run(async (t, srv) => {
  const room = freshRoom('hpmix')
  const items = []
  try {
    const hps = []
    for (const major of MAJORS) {
      const h = await connectHp(URL(), room, { major, label: `hp${major}` })
      items.push(h); hps.push(h)
    }
    const y = await connectClient(srv.wsBase, room, { name: 'yws' })
    items.push(y)
    const all = [...hps, y]

    editAll(hps[0], 'hp')
    y.text().insert(0, 'y;')
    y.map().set('y', { from: 'y-websocket' })
    const p = new Y.XmlElement('heading')
    p.insert(0, [new Y.XmlText('from y')])
    y.xml().insert(0, [p])
    for (const h of hps.slice(1)) editAll(h, `hp${h.major}`)
    await waitSame(all, { roots: ROOTS })
    assert.equal(y.map().get('hp').by, 'hp')
    assert.equal(hps[0].map().get('y').from, 'y-websocket')
    assert.deepEqual(hps[0].xml().toArray().map((n) => n.nodeName).sort(), ['heading', ...hps.map(() => 'paragraph')], 'y\'s heading and a paragraph of each provider')

    // awareness: each side sees the others' states, and a change
    for (const h of hps) h.awareness.setLocalStateField('user', { name: h.label })
    y.awareness.setLocalStateField('user', { name: 'yws' })
    const sees = (obs, c, name) => obs.awareness.getStates().get(c.doc.clientID)?.user?.name === name
    await waitFor(() => hps.every((h) => sees(y, h, h.label) && sees(h, y, 'yws') && hps.every((o) => sees(h, o, o.label))),
      { message: 'every awareness state everywhere', describe: () => all.map((c) => `${c.label || c.name} sees ${awarenessText(c)}`).join('\n') })
    y.awareness.setLocalStateField('user', { name: 'yws-2' })
    hps[0].awareness.setLocalStateField('user', { name: 'hp-2' })
    await waitFor(() => hps.every((h) => sees(h, y, 'yws-2')) && sees(y, hps[0], 'hp-2'),
      { message: 'the changed states', describe: () => all.map((c) => `${c.label || c.name} sees ${awarenessText(c)}`).join('\n') })
    // a y-websocket client leaving is removed from the providers' awareness
    const yId = y.doc.clientID
    await y.destroy()
    await waitFor(() => hps.every((h) => !h.awareness.getStates().has(yId)), { message: 'y\'s awareness removed at the providers' })
    for (const h of hps) assert.deepEqual(h.closes, [], `${h.label}: no close`)
  } finally {
    await destroyAll(items.filter((x) => !(x instanceof HpClient)))
    await destroyHp(items.filter((x) => x instanceof HpClient))
  }
}))

test('a lone provider stays connected for 60 s (4.x and 3.x, with and without awareness): no close, no disconnect, status connected', { timeout: 90000, skip: SKIP_ALL || (process.env.WIREDB_SKIP_SLOW === '1' ? 'WIREDB_SKIP_SLOW=1' : false) }, run(async (t, srv) => {
  const lone = []
  try {
    for (const major of MAJORS) lone.push(await connectHp(URL(), freshRoom(`hp${major}lone`), { major, label: `v${major}` }))
    // only the server's Ping can keep this one alive (it sends nothing by itself)
    if (MAJORS.includes(4) && !REFERENCE) lone.push(await connectHp(URL(), freshRoom('hp4mute'), { major: 4, awareness: null, label: 'v4-no-awareness' }))
    // a 3.x provider cannot read a Ping: the server keeps it alive with an empty awareness update
    if (MAJORS.includes(3) && !REFERENCE) lone.push(await connectHp(URL(), freshRoom('hp3mute'), { major: 3, awareness: null, label: 'v3-no-awareness' }))
    const sockets = lone.map((c) => c.ws)
    const t0 = Date.now()
    const bad = () => lone.filter((c) => c.status !== 'connected' || c.closes.length || c.disconnects.length || c.ws !== sockets[lone.indexOf(c)])
    // 60 s, checked every 250 ms (the provider closes at ~30-33 s of silence)
    while (Date.now() - t0 < 60000) {
      const b = bad()
      if (b.length) assert.fail(`after ${Date.now() - t0} ms: ${b.map((c) => c.describe()).join('\n')}`)
      await sleep(250)
    }
    assert.deepEqual(bad(), [])
    for (const c of lone) {
      t.diagnostic(`${c.label}: pings received ${c.rec.pings}, frames ${c.rec.frames.length}`)
      assert.equal(c.rec.opens, 1, `${c.label}: one socket open in 60 s`)
    }
    const mute = lone.find((c) => c.label === 'v4-no-awareness')
    if (mute) assert.ok(mute.rec.pings >= 1, 'the server pinged the silent 4.x provider')
    for (const c of lone.filter((x) => x.major === 3)) assert.equal(c.rec.pings, 0, `${c.label}: no Ping to a 3.x provider (it cannot read one)`)
    // and they still work
    for (const c of lone) {
      const peer = await connectHp(URL(), c.name, { major: c.major, label: `${c.label}-peer` })
      try {
        peer.text().insert(0, 'still here')
        await waitFor(() => c.text().toString() === 'still here', { message: `${c.label} still receives`, describe: () => c.describe() })
      } finally { await peer.destroy() }
    }
  } finally {
    await destroyHp(lone)
  }
}))

test('max_documents_per_connection 2: a third document on one socket gets authenticationFailed, the first two keep working', { timeout: 30000, skip: caddyOnly('no such limit') }, run(async (t, srv) => {
  const few = `ws://127.0.0.1:${srv.port}/few/`
  const [d1, d2, d3] = [1, 2, 3].map((i) => freshRoom(`hpfew${i}`))
  const items = []
  try {
    const socket = hpSocket(few)
    items.push(socket)
    const s1 = new HpClient(null, d1, { socket, label: 's1' })
    items.push(s1)
    await s1.waitSynced()
    const s2 = new HpClient(null, d2, { socket, label: 's2' })
    items.push(s2)
    await s2.waitSynced()
    const s3 = new HpClient(null, d3, { socket, label: 's3' })
    items.push(s3)
    const reason = await s3.waitAuthFailed()
    t.diagnostic(`third document refused: ${JSON.stringify(reason)}`)
    assert.match(reason, /too many documents/)
    assert.equal(s3.synced, false)
    assert.deepEqual(s3.scopes, [])

    // the first two still work on the same socket
    const p1 = await connectHp(few, d1, { label: 'p1' })
    const p2 = await connectHp(few, d2, { label: 'p2' })
    items.push(p1, p2)
    editAll(s1, 's1'); editAll(s2, 's2'); p1.map().set('p1', 1); p2.map().set('p2', 2)
    await waitSame([s1, p1], { roots: ROOTS })
    await waitSame([s2, p2], { roots: ROOTS })
    await s1.waitAcked(); await s2.waitAcked()
    assert.deepEqual(s1.disconnects, [], 'the socket stayed open')
    assert.equal(socket._wiredbTest.opens, 1)
    // nothing of d3 was stored
    const fewDir = path.join(srv.tmpDir, 'data-few')
    assert.ok(!fs.existsSync(roomFile(fewDir, d3)), 'the refused document must not create a room')
    assert.ok(fs.existsSync(roomFile(fewDir, d1)))
  } finally {
    await destroyHp(items)
  }
}))
