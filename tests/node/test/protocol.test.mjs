// The y-websocket wire protocol as a raw client sees it (DESIGN §4).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, withServer, caddyOnly } from '../lib/server.js'
import { Y, connectClient, connectClients, destroyAll, freshRoom, sleep, waitFor, waitConverged, docDiff, stable } from '../lib/clients.js'
import { openRaw, msgSyncStep1, msgSyncStep2, msgUpdate, msgQueryAwareness } from '../lib/raw.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

const svMap = (sv) => stable(Object.fromEntries([...Y.decodeStateVector(sv).entries()].sort((a, b) => a[0] - b[0])))
const isStep1 = (m) => m.type === 'sync' && m.sub === 'step1'
const isStep2 = (m) => m.type === 'sync' && m.sub === 'step2'

test('greeting: sync step 1 with the room\'s state vector first, then the current awareness states; step 1 is answered with the full state', { timeout: 30000 }, run(async (t, srv) => {
  const room = freshRoom('greet')
  const a = await connectClient(srv.wsBase, room, { name: 'greet-a' })
  let raw
  try {
    a.text().insert(0, 'greeting content')
    a.map().set('k', [1, 2])
    a.awareness.setLocalStateField('user', { name: 'a' })
    // let the server have it all (a second client proves it was relayed, hence accepted)
    const b = await connectClient(srv.wsBase, room, { name: 'greet-b' })
    await waitConverged([a, b])
    await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user, { message: 'b to see a\'s awareness' })
    await b.destroy()

    // the server speaks once the client's first message (its step 1, as y-websocket sends on
    // open) has shown its protocol: then the greeting, then the answer
    raw = await openRaw(srv.roomUrl(room))
    await sleep(200)
    // (y-websocket's reference server greets at once)
    if (!caddyOnly('')) assert.deepEqual(raw.messages, [], 'the server sent something before the client\'s first message')
    await raw.send(msgSyncStep1(new Uint8Array([0])))
    const first = await raw.waitMessage(() => true, { message: 'the greeting' })
    assert.equal(first.type + '/' + first.sub, 'sync/step1', `first message from the server is sync step 1, got ${first.type}/${first.sub}`)
    assert.equal(svMap(first.payload), svMap(Y.encodeStateVector(a.doc)), 'the greeting carries the room\'s state vector')
    const aw = await raw.waitMessage((m) => m.type === 'awareness', { message: 'current awareness states in the greeting' })
    const entry = aw.payload.find((e) => e.clientID === a.doc.clientID)
    assert.ok(entry && entry.state && entry.state.user.name === 'a', `greeting awareness has a's state: ${JSON.stringify(aw.payload)}`)
    assert.ok(raw.messages.indexOf(aw) < raw.messages.findIndex(isStep2), 'the greeting comes before the answer to the step 1')

    const step2 = await raw.waitMessage(isStep2, { message: 'sync step 2 answering our step 1' })
    const doc = new Y.Doc()
    Y.applyUpdate(doc, step2.payload)
    assert.equal(docDiff(a.doc, doc), null, 'step 2 holds the full state')

    // step 1 with a state vector that has everything: step 2 carries no structs
    await raw.send(msgSyncStep1(Y.encodeStateVector(a.doc)))
    await waitFor(() => raw.messages.filter(isStep2).length >= 2, { message: 'second step 2' })
    const empty = raw.messages.filter(isStep2)[1]
    const decoded = Y.decodeUpdate(empty.payload)
    assert.equal(decoded.structs.length, 0, 'a diff against a complete state vector has no structs')
    assert.equal(raw.close, null, 'connection still open')
  } finally {
    if (raw) await raw.end()
    await destroyAll([a])
  }
}))

test('a client\'s step 1 sent before the greeting arrives is answered (y-websocket sends it on open)', { timeout: 30000 }, run(async (t, srv) => {
  const room = freshRoom('early')
  const a = await connectClient(srv.wsBase, room, { name: 'early-a' })
  let raw
  try {
    a.text().insert(0, 'early bird')
    const b = await connectClient(srv.wsBase, room, { name: 'early-b' })
    await waitConverged([a, b]); await b.destroy()
    raw = await openRaw(srv.roomUrl(room))
    await raw.send(msgSyncStep1(new Uint8Array([0]))) // at once, no waiting for anything
    const step2 = await raw.waitMessage(isStep2, { message: 'step 2' })
    const doc = new Y.Doc(); Y.applyUpdate(doc, step2.payload)
    assert.equal(doc.getText('text').toString(), 'early bird')
    assert.ok(raw.messages.some(isStep1), 'the server also sent its own step 1')
  } finally {
    if (raw) await raw.end()
    await destroyAll([a])
  }
}))

test('an update from a raw connection is relayed to the room\'s clients', { timeout: 30000 }, run(async (t, srv) => {
  const room = freshRoom('relay')
  const b = await connectClient(srv.wsBase, room, { name: 'relay-b' })
  let raw
  try {
    raw = await openRaw(srv.roomUrl(room), { hello: true })
    await raw.waitMessage(isStep1, { message: 'greeting' })
    const src = new Y.Doc()
    src.getText('text').insert(0, 'from raw')
    await raw.send(msgUpdate(Y.encodeStateAsUpdate(src)))
    await waitFor(() => b.text().toString() === 'from raw', { message: 'b to receive the raw update', describe: () => b.describe() })
    // a step 2 is applied like an update
    const before = Y.encodeStateVector(src)
    src.getMap('map').set('via', 'step2')
    await raw.send(msgSyncStep2(Y.encodeStateAsUpdate(src, before)))
    await waitFor(() => b.map().get('via') === 'step2', { message: 'b to receive the raw step 2' })
  } finally {
    if (raw) await raw.end()
    await destroyAll([b])
  }
}))

test('an update that carries nothing new (a reconnecting client\'s step 2, an empty update) is accepted and not relayed', { timeout: 30000 }, run(async (t, srv) => {
  const room = freshRoom('dup')
  const a = await connectClient(srv.wsBase, room, { name: 'dup-a' })
  let raw, observer
  try {
    a.text().insert(0, 'already there')
    a.map().set('x', 1)
    observer = await openRaw(srv.roomUrl(room))
    await observer.send(msgSyncStep1(new Uint8Array([0])))
    await observer.waitMessage((m) => isStep2(m) && m.payload.length > 2, { message: 'observer to have the content' })
    raw = await openRaw(srv.roomUrl(room), { hello: true })
    await raw.waitMessage(isStep1, { message: 'greeting' })
    const nBefore = observer.messages.length
    await raw.send(msgSyncStep2(Y.encodeStateAsUpdate(a.doc))) // everything again
    await raw.send(msgUpdate(new Uint8Array([0, 0]))) // Yjs' empty update
    await raw.send(msgSyncStep2(new Uint8Array([0, 0])))
    await sleep(700)
    assert.equal(raw.close, null, `connection stays open, got close ${JSON.stringify(raw.close)}`)
    const relayed = observer.messages.slice(nBefore).filter((m) => m.type === 'sync')
    assert.deepEqual(relayed.map((m) => `${m.sub}:${Buffer.from(m.payload).toString('hex')}`), [], 'nothing new, nothing relayed')
    const c = await connectClient(srv.wsBase, room, { name: 'dup-c' })
    try {
      assert.equal(docDiff(a.doc, c.doc), null)
      assert.equal(c.text().toString(), 'already there', 'no duplicated content')
    } finally { await c.destroy() }
  } finally {
    if (raw) await raw.end()
    if (observer) await observer.end()
    await destroyAll([a])
  }
}))

test('query awareness (message type 3) is answered with all current awareness states', { timeout: 30000, skip: caddyOnly('the reference server ignores message type 3') }, run(async (t, srv) => {
  const room = freshRoom('query')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'query-' })
  let raw
  try {
    a.awareness.setLocalStateField('user', { name: 'a' })
    b.awareness.setLocalStateField('user', { name: 'b' })
    await waitFor(() => a.awareness.getStates().get(b.doc.clientID)?.user && b.awareness.getStates().get(a.doc.clientID)?.user,
      { message: 'a and b to see each other' })
    raw = await openRaw(srv.roomUrl(room), { hello: true })
    await raw.waitMessage(isStep1, { message: 'greeting' })
    await sleep(200)
    const n = raw.messages.length
    await raw.send(msgQueryAwareness())
    const ans = await waitFor(() => raw.messages.slice(n).find((m) => m.type === 'awareness' &&
      [a, b].every((c) => m.payload.some((e) => e.clientID === c.doc.clientID && e.state?.user))), { message: 'an awareness message with a\'s and b\'s states' })
    t.diagnostic(`answer: ${JSON.stringify(ans.payload)}`)
  } finally {
    if (raw) await raw.end()
    await destroyAll([a, b])
  }
}))

test('large messages: a 2 MiB edit and a 2 MiB step 2 go through (coder/websocket\'s 32 KiB default read limit must be raised)', { timeout: 60000 }, run(async (t, srv) => {
  const room = freshRoom('large')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'large-' })
  let late
  try {
    const big = 'x'.repeat(1024 * 1024) + 'ü'.repeat(512 * 1024) // 2 MiB of UTF-8
    a.text().insert(0, big)
    a.map().set('done', true)
    await waitFor(() => b.map().get('done') === true, { timeout: 20000, message: 'b to receive the 2 MiB update', describe: () => b.describe() + '\n' + a.describe() })
    assert.equal(b.text().length, big.length)
    assert.equal(a.closes.length, 0, `the sender was not disconnected: ${JSON.stringify(a.closes)}`)
    late = await connectClient(srv.wsBase, room, { name: 'large-late', timeout: 20000 })
    assert.equal(late.text().toString(), big)
  } finally {
    await destroyAll([a, b, late])
  }
}))
