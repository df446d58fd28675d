// Hocuspocus providers in cluster mode (issue 16): two Caddy instances on one Redis and one
// data directory (lib/cluster.js, as in cluster.test.mjs); a provider on instance A and one on
// instance B (and a y-websocket client on B) share a room: edits and awareness cross the
// instances, SyncStatus acknowledges on both, a late joiner on either instance gets it all, and
// what was acknowledged is in Redis and the checkpoint files (read without the server).
//
// Needs redis-server (PATH or WIREDB_REDIS_SERVER); skipped without it unless
// WIREDB_REQUIRE_REDIS=1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { caddyOnly } from '../lib/server.js'
import { Y, Client, destroyAll, freshRoom, waitFor, docDiff, sleep } from '../lib/clients.js'
import { findRedisServer, withCluster } from '../lib/cluster.js'
import { MAJORS, connectHp, destroyHp, hpUrl, waitSame, copyDoc, awarenessText } from '../lib/hocuspocus.js'

const REDIS_BIN = findRedisServer()
let SKIP = caddyOnly('cluster mode belongs to the wiredb Caddy module') ||
  (process.env.WIREDB_HP_SERVER === 'reference' ? 'cluster mode belongs to the wiredb Caddy module' : false)
if (!SKIP && !process.env.WIREDB_CADDY_BIN) SKIP = 'WIREDB_CADDY_BIN is not set'
if (!SKIP && !REDIS_BIN && process.env.WIREDB_REQUIRE_REDIS !== '1') SKIP = 'redis-server not found (install it or set WIREDB_REDIS_SERVER; with WIREDB_REQUIRE_REDIS=1 this is a failure)'

const ROOTS = { text: 'text', map: 'map', prosemirror: 'xml' }

test('cluster: providers on instances A and B (and y-websocket on B) converge, with awareness and acknowledgements; late joiners and Redis hold everything', { timeout: 60000, skip: SKIP }, withCluster({ n: 2 }, async (t, cl) => {
  const room = freshRoom('hpcl')
  const items = []
  try {
    const major = MAJORS[MAJORS.length - 1] // the oldest major under test on B
    const a = await connectHp(hpUrl(cl.a), room, { label: 'hp4@a' })
    const b = await connectHp(hpUrl(cl.b), room, { major, label: `hp${major}@b` })
    const y = new Client(cl.b.wsBase, room, { name: 'yws@b' })
    items.push(a, b, y)
    await y.waitSynced()

    // both directions, then concurrently
    a.text().insert(0, 'from A;')
    await waitFor(() => b.text().toString() === 'from A;' && y.text().toString() === 'from A;', { message: 'A\'s edit on B', describe: () => b.describe() })
    b.map().set('b', 'from B')
    await waitFor(() => a.map().get('b') === 'from B', { message: 'B\'s edit on A', describe: () => a.describe() })
    for (let i = 0; i < 30; i++) {
      a.text().insert(0, `a${i} `)
      b.text().insert(b.text().length, ` b${i}`)
      y.map().set(`y${i}`, i)
      if (i % 10 === 0) {
        const p = new Y.XmlElement('paragraph')
        p.setAttribute('i', String(i))
        a.xml().insert(a.xml().length, [p])
      }
    }
    await waitSame([a, b, y], { roots: ROOTS, timeout: 20000 })
    await a.waitAcked()
    await b.waitAcked()

    // awareness crosses the instances (and the protocols)
    a.awareness.setLocalStateField('user', { name: 'a' })
    b.awareness.setLocalStateField('user', { name: 'b' })
    y.awareness.setLocalStateField('user', { name: 'y' })
    const sees = (obs, c, name) => obs.awareness.getStates().get(c.doc.clientID)?.user?.name === name
    await waitFor(() => sees(a, b, 'b') && sees(a, y, 'y') && sees(b, a, 'a') && sees(y, a, 'a'),
      { message: 'awareness across instances', describe: () => [a, b, y].map((c) => `${c.label || c.name}: ${awarenessText(c)}`).join('\n') })

    // stateless messages cross instances (the room's Redis channel), and not back to the sender
    b.provider.sendStateless('cross-instance')
    await waitFor(() => a.stateless.includes('cross-instance'), { timeout: 5000, message: "B's stateless message at A" })
    await sleep(300)
    assert.deepEqual(b.stateless, [], 'the sender got its own stateless message back')

    const want = copyDoc(a.doc)
    await destroyAll([y])
    await destroyHp([a, b])
    // late joiners on each instance
    for (const srv of [cl.a, cl.b]) {
      const late = await connectHp(hpUrl(srv), room, { label: `late@${srv.name}` })
      items.push(late)
      await waitSame([{ doc: want }, late], { roots: ROOTS, timeout: 1, message: `the late joiner on ${srv.name} to hold everything once synced` })
    }
    // durable: Redis stream + checkpoint, read independently of the server
    const durable = await cl.durableDoc(room)
    t.diagnostic(durable.describe)
    assert.equal(durable.pending, false)
    const d = docDiff(want, durable.doc, ROOTS)
    assert.equal(d, null, `Redis + checkpoint differ from what was acknowledged: ${d}`)
  } finally {
    await destroyAll(items.filter((x) => x instanceof Client))
    await destroyHp(items)
  }
}))
