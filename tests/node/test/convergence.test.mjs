// Convergence of real y-websocket clients through the server (DESIGN §3, §4).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, withServer } from '../lib/server.js'
import {
  Y, prng, connectClient, connectClients, destroyAll, freshRoom, sleep,
  waitFor, waitConverged, assertConverged, DEFAULT_ROOTS
} from '../lib/clients.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

const SEED = Number(process.env.WIREDB_SEED || Date.now() % 1000000)

test('two clients converge on Y.Text, Y.Map and Y.Array edits (both directions, concurrent)', { timeout: 60000 }, run(async (t, srv) => {
  const room = freshRoom('two')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'two-' })
  try {
    // a -> b
    a.text().insert(0, 'hello')
    a.map().set('from', 'a')
    a.array().push([1, 2, 3])
    await waitFor(() => b.text().toString() === 'hello' && b.map().get('from') === 'a' && b.array().length === 3,
      { message: 'a\'s edits at b', describe: () => JSON.stringify(b.doc.toJSON()) })
    // b -> a
    b.text().insert(5, ' world')
    b.map().set('from', 'b')
    b.map().set('onlyB', { nested: [true, null, 1.5] })
    b.array().delete(0, 1)
    await waitFor(() => a.text().toString() === 'hello world' && a.map().get('onlyB') && a.array().length === 2,
      { message: 'b\'s edits at a', describe: () => JSON.stringify(a.doc.toJSON()) })
    // concurrent: both edit the same positions/keys in the same tick
    a.text().insert(0, 'A')
    b.text().insert(0, 'B')
    a.text().delete(3, 2)
    b.text().format(0, 4, { bold: true })
    a.map().set('k', 'a')
    b.map().set('k', 'b')
    a.map().delete('from')
    b.map().set('from', 'b again')
    a.array().insert(1, ['a1', 'a2'])
    b.array().insert(1, ['b1'])
    b.array().delete(0, 1)
    await waitConverged([a, b])
    const json = a.doc.getMap('map').toJSON()
    assert.ok(['a', 'b'].includes(json.k), `map conflict resolved to one of the writes, got ${json.k}`)
    assert.equal(a.array().length, 4)
    assert.equal(a.text().length, 'AB'.length + 'hello world'.length - 2)
  } finally {
    await destroyAll([a, b])
  }
}))

/** one random edit on a client's doc */
function randomEdit (gen, c, i) {
  const text = c.text(); const map = c.map(); const arr = c.array()
  switch (prng.int32(gen, 0, 5)) {
    case 0: case 1: { // text insert (most common, like typing)
      const pos = prng.int32(gen, 0, text.length)
      text.insert(pos, prng.word(gen, 1, 6), prng.bool(gen) && prng.bool(gen) ? { bold: true } : undefined)
      break
    }
    case 2: { // text delete
      if (text.length === 0) { text.insert(0, 'x'); break }
      const pos = prng.int32(gen, 0, text.length - 1)
      text.delete(pos, prng.int32(gen, 1, Math.min(4, text.length - pos)))
      break
    }
    case 3: { // map set / delete
      const key = 'k' + prng.int32(gen, 0, 9)
      if (prng.int32(gen, 0, 3) === 0) map.delete(key)
      else map.set(key, prng.bool(gen) ? `${c.name}:${i}` : { n: i, by: c.name })
      break
    }
    case 4: { // array push
      arr.push([`${c.name}:${i}`])
      break
    }
    case 5: { // array delete
      if (arr.length === 0) { arr.insert(0, [i]); break }
      arr.delete(prng.int32(gen, 0, arr.length - 1), 1)
      break
    }
  }
}

test('10 clients x 100 random concurrent edits converge (identical toJSON and state vectors)', { timeout: 120000 }, run(async (t, srv) => {
  const room = freshRoom('ten')
  t.diagnostic(`seed ${SEED} (set WIREDB_SEED to repeat)`)
  const clients = await connectClients(srv.wsBase, room, 10, { namePrefix: 'ten-' })
  try {
    const root = prng.create(SEED)
    await Promise.all(clients.map(async (c, ci) => {
      const gen = prng.create(prng.uint32(root, 0, 0x7fffffff) + ci)
      for (let i = 0; i < 100; i++) {
        // a few edits in one transaction now and then, like a paste
        if (prng.int32(gen, 0, 9) === 0) c.doc.transact(() => { randomEdit(gen, c, i); randomEdit(gen, c, i + 1000) })
        else randomEdit(gen, c, i)
        const d = prng.int32(gen, 0, 6)
        if (d > 0) await sleep(d - 1)
      }
    }))
    await waitConverged(clients, { timeout: 30000 })
    // every client's own edits are in everyone's state vector
    const sv = Y.decodeStateVector(Y.encodeStateVector(clients[0].doc))
    for (const c of clients) assert.ok(sv.get(c.doc.clientID) > 0, `${c.name}'s edits are in the merged state`)
    t.diagnostic(`text length ${clients[0].text().length}, map keys ${clients[0].map().size}, array length ${clients[0].array().length}`)
  } finally {
    await destroyAll(clients)
  }
}))

test('a late joiner gets the full state', { timeout: 60000 }, run(async (t, srv) => {
  const room = freshRoom('late')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'late-' })
  let late
  try {
    const gen = prng.create(SEED + 7)
    for (let i = 0; i < 200; i++) randomEdit(gen, i % 2 ? a : b, i)
    a.map().set('mark', 'MARK')
    await waitConverged([a, b])
    late = await connectClient(srv.wsBase, room, { name: 'late-joiner' })
    // synced means the server's step 2 was applied: no further waiting
    assertConverged([a, late])
    assert.equal(late.map().get('mark'), 'MARK')
    assert.ok(late.text().length > 0 && late.array().length > 0, 'late joiner has text and array content')
    // the late joiner is a full peer: its edits reach the others
    late.map().set('late', true)
    await waitConverged([a, b, late])
  } finally {
    await destroyAll([a, b, late])
  }
}))

test('edits made offline are synced on reconnect, in both directions', { timeout: 60000 }, run(async (t, srv) => {
  const room = freshRoom('offline')
  const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'off-' })
  try {
    a.text().insert(0, 'shared ')
    await waitConverged([a, b])
    b.disconnect()
    await waitFor(() => !b.provider.wsconnected && b.provider.ws === null, { message: 'b to disconnect' })
    b.text().insert(0, 'offline-b ')
    b.map().set('b', 'offline')
    a.text().insert(a.text().length, 'online-a')
    a.map().set('a', 'online')
    await sleep(200)
    assert.equal(a.map().get('b'), undefined, 'b is offline, a cannot have its edit yet')
    b.connect()
    await b.waitSynced()
    await waitConverged([a, b], { roots: DEFAULT_ROOTS })
    assert.equal(a.map().get('b'), 'offline')
    assert.equal(b.map().get('a'), 'online')
    // reconnecting repeated everything b had; nothing may be duplicated
    assert.equal(a.text().toString().split('shared').length, 2, `no duplication: ${a.text().toString()}`)
  } finally {
    await destroyAll([a, b])
  }
}))
