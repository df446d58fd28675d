// Awareness (presence, cursors) through the server (DESIGN §4).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, withServer } from '../lib/server.js'
import { connectClient, connectClients, destroyAll, freshRoom, sleep, waitFor, stable } from '../lib/clients.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

// y-protocols' own awareness timeout on a peer is 30 s; 5 s proves the server broadcast the removal
const REMOVAL_MS = 5000

const seen = (observer, c) => observer.awareness.getStates().get(c.doc.clientID)
const describeAw = (cs) => () => cs.map((c) => `${c.name}(${c.doc.clientID}) sees ${stable([...c.awareness.getStates().entries()])}`).join('\n')

test('awareness: peers see each other; clean disconnect and abrupt cut are removed within 5 s', { timeout: 60000 }, run(async (t, srv) => {
  const room = freshRoom('aw')
  const clients = await connectClients(srv.wsBase, room, 3, { namePrefix: 'aw-' })
  const [a, b, c] = clients
  let d
  try {
    for (const x of clients) x.awareness.setLocalStateField('user', { name: x.name, color: '#' + x.doc.clientID.toString(16).slice(0, 6) })
    await waitFor(() => clients.every((o) => clients.every((x) => seen(o, x)?.user?.name === x.name)),
      { message: 'every client to see every client\'s awareness state', describe: describeAw(clients) })

    // an update of a state (cursor move) reaches the peers
    a.awareness.setLocalStateField('cursor', { anchor: 3, head: 5 })
    await waitFor(() => seen(b, a)?.cursor?.head === 5 && seen(c, a)?.cursor?.head === 5,
      { message: 'a\'s cursor at b and c', describe: describeAw(clients) })

    // clean disconnect: b's state disappears at a and c
    const bID = b.doc.clientID
    const t0 = Date.now()
    await b.destroy()
    await waitFor(() => !a.awareness.getStates().has(bID) && !c.awareness.getStates().has(bID),
      { timeout: REMOVAL_MS, message: 'b\'s awareness state to be removed after a clean disconnect', describe: describeAw([a, c]) })
    t.diagnostic(`clean disconnect removed after ${Date.now() - t0} ms`)

    // abrupt cut (TCP socket destroyed, no close frame, no awareness removal from c):
    // only the server can tell a about it within 5 s
    const cID = c.doc.clientID
    const t1 = Date.now()
    await c.cut()
    await waitFor(() => !a.awareness.getStates().has(cID),
      { timeout: REMOVAL_MS, message: 'c\'s awareness state to be removed at a after an abrupt cut (the server must broadcast the removal)', describe: describeAw([a]) })
    t.diagnostic(`abrupt cut removed after ${Date.now() - t1} ms`)

    // a late joiner gets the current states (a's) and none of the departed ones
    d = await connectClient(srv.wsBase, room, { name: 'aw-late' })
    await waitFor(() => seen(d, a)?.user?.name === a.name, { message: 'late joiner to get a\'s awareness state', describe: describeAw([d]) })
    await sleep(300)
    assert.ok(!d.awareness.getStates().has(bID), 'late joiner must not see b (left cleanly)')
    assert.ok(!d.awareness.getStates().has(cID), 'late joiner must not see c (was cut)')
    // and a sees the late joiner once it sets a state (y-protocols ignores a
    // client's initial clock-0 state at peers, so it has to set one)
    d.awareness.setLocalStateField('user', { name: d.name })
    await waitFor(() => seen(a, d)?.user?.name === d.name, { message: 'a to see the late joiner', describe: describeAw([a]) })
  } finally {
    await destroyAll([...clients, d])
  }
}))

test('awareness: abrupt cut with TCP RST is removed within 5 s', { timeout: 30000 }, run(async (t, srv) => {
  const room = freshRoom('awrst')
  const [a, c] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'awrst-' })
  try {
    a.awareness.setLocalStateField('user', { name: 'a' })
    c.awareness.setLocalStateField('user', { name: 'c' })
    await waitFor(() => seen(a, c)?.user?.name === 'c', { message: 'a to see c', describe: describeAw([a]) })
    const cID = c.doc.clientID
    await c.cut({ rst: true })
    await waitFor(() => !a.awareness.getStates().has(cID),
      { timeout: REMOVAL_MS, message: 'c\'s state to be removed after a TCP reset', describe: describeAw([a]) })
  } finally {
    await destroyAll([a, c])
  }
}))

// y-websocket@3.1.0 closes and reopens a connection on which it received no
// message for 30 s ("not even your own awareness updates"). Browsers do not
// surface WebSocket pings, so the server must send a lone client something:
// the reference server echoes every awareness update (the client renews its
// own state every 15 s) to all connections, the sender included.
test('a lone client is not dropped by y-websocket\'s 30 s no-message watchdog', { timeout: 60000, skip: process.env.WIREDB_SKIP_SLOW === '1' && 'WIREDB_SKIP_SLOW=1' }, run(async (t, srv) => {
  const room = freshRoom('lone')
  const a = await connectClient(srv.wsBase, room, { name: 'lone' })
  try {
    a.text().insert(0, 'alone')
    const closesBefore = a.closes.length
    await sleep(36000)
    assert.equal(a.closes.length, closesBefore,
      `the lone client's connection was closed ${a.closes.length - closesBefore} time(s) in 36 s: ${JSON.stringify(a.closes)} ` +
      '(y-websocket drops a connection that received nothing for 30 s; echo awareness updates to their sender, as the reference server does)')
    assert.ok(a.provider.wsconnected && a.synced)
  } finally {
    await destroyAll([a])
  }
}))
