// Rooms are isolated from each other (DESIGN §1: the room key is the path after the prefix).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, withServer } from '../lib/server.js'
import { connectClient, destroyAll, freshRoom, sleep, waitFor, waitConverged } from '../lib/clients.js'

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

test('rooms are isolated, including names that are prefixes of each other (a, ab, a/b)', { timeout: 60000 }, run(async (t, srv) => {
  const p = freshRoom('iso')
  const names = [`${p}a`, `${p}ab`, `${p}a/b`, `${p}a/b/c`, `${p}b`]
  const all = []
  try {
    const rooms = []
    for (const name of names) {
      const writer = await connectClient(srv.wsBase, name, { name: `w:${name.slice(p.length)}` })
      const reader = await connectClient(srv.wsBase, name, { name: `r:${name.slice(p.length)}` })
      all.push(writer, reader)
      rooms.push({ name, writer, reader })
    }
    // every writer edits its room, all at once
    for (const r of rooms) {
      r.writer.text().insert(0, `only in ${r.name}`)
      r.writer.map().set('room', r.name)
      r.writer.array().push([r.name])
      r.writer.awareness.setLocalStateField('room', r.name)
    }
    for (const r of rooms) {
      await waitConverged([r.writer, r.reader], { message: `the two clients of ${r.name} to converge` })
    }
    await sleep(500) // time for anything misrouted to arrive
    for (const r of rooms) {
      for (const c of [r.writer, r.reader]) {
        assert.equal(c.text().toString(), `only in ${r.name}`, `${c.name}: text`)
        assert.deepEqual(c.map().toJSON(), { room: r.name }, `${c.name}: map`)
        assert.deepEqual(c.array().toJSON(), [r.name], `${c.name}: array`)
      }
      await waitFor(() => r.reader.awareness.getStates().get(r.writer.doc.clientID)?.room === r.name,
        { message: `${r.reader.name} to see its writer's awareness` })
      for (const [id, st] of r.reader.awareness.getStates()) {
        if (st.room !== undefined) assert.equal(st.room, r.name, `${r.reader.name} sees awareness of client ${id} from room ${st.room}`)
      }
    }
    // late joiners see their own room only
    for (const r of rooms) {
      const late = await connectClient(srv.wsBase, r.name, { name: `late:${r.name.slice(p.length)}` })
      all.push(late)
      assert.equal(late.text().toString(), `only in ${r.name}`, `late joiner of ${r.name}`)
      assert.deepEqual(late.map().toJSON(), { room: r.name })
    }
    // the parent "room" p itself was never written
    const parent = await connectClient(srv.wsBase, p, { name: 'parent' }).catch((e) => e)
    if (parent instanceof Error) {
      t.diagnostic(`connecting to the bare prefix room failed (acceptable): ${parent.message.split('\n')[0]}`)
    } else {
      all.push(parent)
      assert.equal(parent.text().toString(), '', 'room that is a prefix of the others is empty')
    }
  } finally {
    await destroyAll(all)
  }
}))
