// Webhooks of a `wiredb` route (issue 17): signed (X-WireDB-Signature, HMAC-SHA256 of the
// raw body), debounced room.changed events for edits over the WebSocket and over the HTTP
// API, room.loaded / room.unloaded when asked for, retries after a failing answer, and a
// receiver that never answers, which must not slow the rooms (edits/s and POST latency
// measured with and without it; the numbers are reported with t.diagnostic).
// Receivers are node:http servers on 127.0.0.1 (lib/httpapi.js). Every wait is bounded.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { TestServer, startServer, withServer, caddyOnly } from '../lib/server.js'
import { connectClient, destroyAll, freshRoom, sleep, waitFor } from '../lib/clients.js'
import { captureWarnings } from '../lib/access.js'
import {
  WebhookReceiver, webhookLines, hookSecret, verifySignature, postUpdate, getUpdate, brief, Backend,
  decodeSv, svObject, docSv, measureEditRate, median, quantile, fmt
} from '../lib/httpapi.js'

const SKIP = caddyOnly('webhooks are a wiredb feature')
const DEBOUNCE_MS = 300

/** checks one webhook request: headers, signature with `secret` (and not with `wrongSecret`), body shape */
function assertSigned (req, secret, { event, room, wrongSecret } = {}) {
  const what = `webhook ${req.json?.event} for ${req.json?.room}`
  assert.equal(req.method, 'POST', `${what}: method`)
  assert.match(String(req.headers['content-type']), /^application\/json/, `${what}: Content-Type`)
  assert.ok(req.json, `${what}: the body is JSON: ${req.raw.toString('utf8').slice(0, 200)}`)
  if (event) assert.equal(req.json.event, event, `${what}: event`)
  if (room) assert.equal(req.json.room, room, `${what}: room`)
  assert.equal(req.headers['x-wiredb-event'], req.json.event, `${what}: X-WireDB-Event equals the body's event`)
  const sig = req.headers['x-wiredb-signature']
  assert.match(String(sig), /^sha256=[0-9a-f]{64}$/, `${what}: X-WireDB-Signature format`)
  assert.ok(verifySignature(secret, req.raw, sig), `${what}: the signature verifies with the webhook's secret`)
  if (wrongSecret) assert.ok(!verifySignature(wrongSecret, req.raw, sig), `${what}: the signature must not verify with another secret`)
  assert.equal(typeof req.json.time, 'string', `${what}: time`)
  assert.match(req.json.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, `${what}: time is RFC 3339`)
  const skew = Math.abs(Date.parse(req.json.time) - req.wall)
  assert.ok(skew < 60000, `${what}: time ${req.json.time} is ${skew} ms from the receipt`)
}

/** asserts a room.changed body's updates count and state vector */
function assertChanged (req, { updates, sv }, what) {
  assert.equal(req.json.event, 'room.changed', `${what}: event`)
  assert.equal(req.json.updates, updates, `${what}: updates since the last hook: ${JSON.stringify(req.json)}`)
  assert.equal(typeof req.json.state_vector, 'string', `${what}: state_vector`)
  assert.deepEqual(svObject(decodeSv(req.json.state_vector)), sv, `${what}: state_vector is the room's`)
}

// ---------------------------------------------------------------------------

describe('webhooks: signed, debounced room.changed (two webhooks, one flaky)', { skip: SKIP }, () => {
  const SECRET_A = hookSecret()
  const SECRET_B = hookSecret()
  const SECRET_F = hookSecret()
  const recvA = new WebhookReceiver({ secret: SECRET_A })
  const recvB = new WebhookReceiver({ secret: SECRET_B })
  // answers 500 to the first two deliveries of each room: the server must retry
  const flaky = new WebhookReceiver({ secret: SECRET_F, failFirst: 2 })
  let server
  before(async () => {
    await Promise.all([recvA.start(), recvB.start(), flaky.start()])
    const srv = new TestServer({
      wiredbDirectives: [
        'http_api',
        ...webhookLines(recvA.url, { secret: SECRET_A, debounce: `${DEBOUNCE_MS}ms` }),
        ...webhookLines(recvB.url, { secret: SECRET_B, debounce: `${DEBOUNCE_MS}ms`, events: 'room.changed', timeout: '2s' }),
        ...webhookLines(flaky.url, { secret: SECRET_F, debounce: `${DEBOUNCE_MS}ms` })
      ]
    })
    // a read_only route on the same rooms (no webhooks of its own)
    srv.opts.siteDirectives = ['@view path /view/*', 'wiredb @view {', `\tdata_dir ${srv.dataDir}`, '\tread_only', '}']
    server = await srv.start()
  })
  after(async () => {
    if (server) await server.close()
    await Promise.all([recvA.close(), recvB.close(), flaky.close()])
  })
  const run = (fn) => withServer(() => server, async (t, srv) => {
    try { await fn(t, srv) } catch (e) {
      process.stderr.write(`\n${recvA.describe()}\n${recvB.describe()}\n${flaky.describe()}\n`)
      throw e
    }
  })

  test('a burst of 20 edits over the WebSocket: one signed event per room and webhook, updates 20, the room\'s state vector', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('hookws')
    const room2 = freshRoom('hookws2')
    const w = await connectClient(srv.wsBase, room, { name: 'hook-w' })
    const w2 = await connectClient(srv.wsBase, room2, { name: 'hook-w2' })
    try {
      // connecting changes nothing: no event
      await sleep(DEBOUNCE_MS * 3)
      assert.equal(recvA.events({ room }).length, 0, `an event before any edit: ${recvA.describe()}`)

      for (let i = 0; i < 20; i++) w.text().insert(w.text().length, `e${i};`)
      for (let i = 0; i < 5; i++) w2.map().set(`k${i}`, i)
      const tLast = performance.now()
      const [ev] = await recvA.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
      const delay = ev.at - tLast
      await recvB.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
      await recvA.waitEvents({ event: 'room.changed', room: room2 }, 1, { timeout: 10000 })
      // nothing more comes for this burst
      await sleep(DEBOUNCE_MS * 3)
      t.diagnostic(`webhook delivery delay (last WebSocket edit -> receipt), debounce ${DEBOUNCE_MS} ms: ${fmt(delay, 1)} ms`)
      t.diagnostic(`event: ${ev.raw.toString('utf8')}`)

      for (const [recv, secret, wrong] of [[recvA, SECRET_A, SECRET_B], [recvB, SECRET_B, SECRET_A]]) {
        const evs = recv.events({ room })
        assert.equal(evs.length, 1, `one event for a burst of 20 edits within the debounce window: ${recv.describe()}`)
        assertSigned(evs[0], secret, { event: 'room.changed', room, wrongSecret: wrong })
        assertChanged(evs[0], { updates: 20, sv: docSv(w.doc) }, `${recv.url}: the burst`)
      }
      const evs2 = recvA.events({ room: room2 })
      assert.equal(evs2.length, 1, `one event for the other room: ${recvA.describe()}`)
      assertSigned(evs2[0], SECRET_A, { event: 'room.changed', room: room2 })
      assertChanged(evs2[0], { updates: 5, sv: docSv(w2.doc) }, 'the other room')
      // the default events are room.changed only
      assert.deepEqual([...new Set(recvA.requests.map((r) => r.json?.event))], ['room.changed'], `only room.changed without \`events\`: ${recvA.describe()}`)
      assert.ok(delay >= DEBOUNCE_MS * 0.5, `delivered ${fmt(delay, 1)} ms after the last edit: not debounced (${DEBOUNCE_MS} ms)?`)

      // one more edit: one more event, counting only what came since
      w.text().insert(0, 'one more;')
      const t2 = performance.now()
      const [, ev2] = await recvA.waitEvents({ event: 'room.changed', room }, 2, { timeout: 10000 })
      t.diagnostic(`webhook delivery delay for a single edit: ${fmt(ev2.at - t2, 1)} ms`)
      assertSigned(ev2, SECRET_A, { event: 'room.changed', room })
      assertChanged(ev2, { updates: 1, sv: docSv(w.doc) }, 'the edit after the burst')

      // the flaky receiver answered 500 twice per room: the server retried, and what it
      // accepted in the end accounts for all 21 updates, the last with the room's state vector
      const covered = () => flaky.events({ room }).filter((r) => r.status === 200).reduce((n, r) => n + r.json.updates, 0)
      await waitFor(() => covered() >= 21, { timeout: 30000, message: 'the flaky receiver\'s accepted deliveries to cover all 21 updates', describe: () => flaky.describe() })
      const fl = flaky.events({ room })
      t.diagnostic(`flaky receiver: ${fl.map((r) => `${r.status} at +${fmt(r.at - fl[0].at, 0)} ms (updates ${r.json.updates})`).join(', ')}`)
      for (const r of fl) assertSigned(r, SECRET_F, { event: 'room.changed', room })
      assert.deepEqual(fl.slice(0, 2).map((r) => r.status), [500, 500])
      assert.equal(covered(), 21, `accepted deliveries count each update once: ${flaky.describe()}`)
      const last = fl.filter((r) => r.status === 200).at(-1)
      assert.deepEqual(svObject(decodeSv(last.json.state_vector)), docSv(w.doc), 'the last accepted delivery has the room\'s state vector')
    } finally {
      await destroyAll([w, w2])
    }
  }))

  test('awareness changes and a read_only client\'s refused edits fire no room.changed', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('hookquiet')
    const warn = captureWarnings() // y-websocket's "permission denied" for the read_only client
    const w = await connectClient(srv.wsBase, room, { name: 'quiet-w' })
    const ro = await connectClient(`ws://127.0.0.1:${srv.port}/view`, room, { name: 'quiet-ro' })
    try {
      w.text().insert(0, 'real edit')
      const [ev] = await recvA.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
      assertChanged(ev, { updates: 1, sv: docSv(w.doc) }, 'the writer\'s edit')
      await waitFor(() => ro.text().toString() === 'real edit', { timeout: 5000, message: 'the read_only client to have the edit' })
      for (let i = 0; i < 5; i++) {
        ro.text().insert(0, `refused ${i};`)
        ro.awareness.setLocalStateField('cursor', i)
        w.awareness.setLocalStateField('cursor', i)
      }
      // barrier: the read_only client's last awareness state (sent after its edits) is at the writer
      await waitFor(() => w.awareness.getStates().get(ro.doc.clientID)?.cursor === 4, { timeout: 5000, message: 'the read_only client\'s awareness at the writer' })
      await sleep(DEBOUNCE_MS * 3)
      assert.equal(recvA.events({ room }).length, 1, `only the writer's edit fired an event: ${recvA.describe()}`)
      assert.equal(w.text().toString(), 'real edit')
    } finally {
      warn.stop()
      await destroyAll([w, ro])
    }
  }))

  test('a burst of 20 POSTs: one event with updates 20; WebSocket edits and POSTs in one window are counted together', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('hookpost')
    const b = new Backend()
    const t0 = performance.now()
    for (let i = 0; i < 20; i++) {
      const r = await postUpdate(srv, room, b.edit((d) => d.getArray('array').push([i])))
      assert.equal(r.status, 200, brief(r))
    }
    const tLast = performance.now()
    const burst = tLast - t0
    t.diagnostic(`20 sequential POSTs took ${fmt(burst, 1)} ms`)
    assert.ok(burst < DEBOUNCE_MS, `the burst (${fmt(burst)} ms) must fit in the debounce window for this test to mean anything`)
    const [ev] = await recvA.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
    t.diagnostic(`webhook delivery delay (last POST answered -> receipt), debounce ${DEBOUNCE_MS} ms: ${fmt(ev.at - tLast, 1)} ms`)
    await sleep(DEBOUNCE_MS * 3)
    assert.equal(recvA.events({ room }).length, 1, `one event for 20 POSTs: ${recvA.describe()}`)
    assertSigned(ev, SECRET_A, { event: 'room.changed', room, wrongSecret: SECRET_B })
    assertChanged(ev, { updates: 20, sv: docSv(b.doc) }, 'the POST burst')

    // a client and the backend in one window
    const c = await connectClient(srv.wsBase, room, { name: 'hookpost-c' })
    try {
      for (let i = 0; i < 5; i++) {
        c.map().set(`ws${i}`, i)
        assert.equal((await postUpdate(srv, room, b.edit((d) => d.getMap('map').set(`post${i}`, i)))).status, 200)
      }
      await waitFor(() => c.map().size === 10, { timeout: 5000, message: 'the client to have all 10 map entries' })
      const [, ev2] = await recvA.waitEvents({ event: 'room.changed', room }, 2, { timeout: 10000 })
      await sleep(DEBOUNCE_MS * 2)
      assert.equal(recvA.events({ room }).length, 2, `one more event for the mixed burst: ${recvA.describe()}`)
      assertChanged(ev2, { updates: 10, sv: docSv(c.doc) }, 'the mixed burst')
    } finally {
      await c.destroy()
    }
  }))
})

// ---------------------------------------------------------------------------

describe('webhooks: room.loaded and room.unloaded when asked for', { skip: SKIP }, () => {
  const SECRET = hookSecret()
  const recv = new WebhookReceiver({ secret: SECRET })
  let server
  before(async () => {
    await recv.start()
    server = await startServer({
      wiredbDirectives: [
        'http_api',
        'room_idle_timeout 1s',
        ...webhookLines(recv.url, { secret: SECRET, debounce: '200ms', events: ['room.changed', 'room.loaded', 'room.unloaded'] })
      ]
    })
  })
  after(async () => {
    if (server) await server.close()
    await recv.close()
  })
  const run = (fn) => withServer(() => server, async (t, srv) => {
    try { await fn(t, srv) } catch (e) { process.stderr.write(`\n${recv.describe()}\n`); throw e }
  })

  test('a client loads the room, edits, leaves: loaded, changed, unloaded, in that order; again on the next visit', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('life')
    let c = await connectClient(srv.wsBase, room, { name: 'life-1' })
    try {
      const [loaded] = await recv.waitEvents({ event: 'room.loaded', room }, 1, { timeout: 10000 })
      assertSigned(loaded, SECRET, { event: 'room.loaded', room })
      t.diagnostic(`room.loaded: ${loaded.raw.toString('utf8')}`)
      for (let i = 0; i < 3; i++) c.text().insert(0, `${i}`)
      const [changed] = await recv.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
      assertSigned(changed, SECRET, { event: 'room.changed', room })
      assertChanged(changed, { updates: 3, sv: docSv(c.doc) }, 'the edits')
      await c.destroy()
      const tLeft = performance.now()
      const [unloaded] = await recv.waitEvents({ event: 'room.unloaded', room }, 1, { timeout: 15000 })
      t.diagnostic(`room.unloaded ${fmt(unloaded.at - tLeft, 0)} ms after the last client left (room_idle_timeout 1s): ${unloaded.raw.toString('utf8')}`)
      assertSigned(unloaded, SECRET, { event: 'room.unloaded', room })
      const order = recv.events({ room }).map((r) => r.json.event)
      assert.deepEqual(order, ['room.loaded', 'room.changed', 'room.unloaded'], `events in order: ${recv.describe()}`)

      // the next visit loads it again; leaving without an edit: no room.changed
      c = await connectClient(srv.wsBase, room, { name: 'life-2' })
      assert.equal(c.text().toString(), '210')
      await recv.waitEvents({ event: 'room.loaded', room }, 2, { timeout: 10000 })
      await c.destroy()
      await recv.waitEvents({ event: 'room.unloaded', room }, 2, { timeout: 15000 })
      await sleep(300)
      assert.deepEqual(recv.events({ room }).map((r) => r.json.event),
        ['room.loaded', 'room.changed', 'room.unloaded', 'room.loaded', 'room.unloaded'], `the second visit: ${recv.describe()}`)
      for (const r of recv.events({ room })) assertSigned(r, SECRET, { room })
    } finally {
      await destroyAll([c])
    }
  }))

  test('a POST to a room with no clients: room.changed is delivered; the room unloads again', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('lifepost')
    const b = new Backend()
    const r = await postUpdate(srv, room, b.edit((d) => d.getText('text').insert(0, 'posted')))
    assert.equal(r.status, 200, brief(r))
    const [changed] = await recv.waitEvents({ event: 'room.changed', room }, 1, { timeout: 10000 })
    assertSigned(changed, SECRET, { event: 'room.changed', room })
    assertChanged(changed, { updates: 1, sv: docSv(b.doc) }, 'the POST')
    // whether a POST loads the room is the server's business; if it reported room.loaded,
    // it must report room.unloaded too
    await sleep(2500)
    const evs = recv.events({ room }).map((e) => e.json.event)
    t.diagnostic(`events for a POSTed room: ${JSON.stringify(evs)}`)
    const loads = evs.filter((e) => e === 'room.loaded').length
    const unloads = evs.filter((e) => e === 'room.unloaded').length
    if (loads > 0) await recv.waitEvents({ event: 'room.unloaded', room }, loads, { timeout: 10000 })
    else assert.equal(unloads, 0, 'room.unloaded without room.loaded')
    // the content is there
    const g = await getUpdate(srv, room)
    assert.equal(g.status, 200, brief(g))
  }))
})

// ---------------------------------------------------------------------------

describe('webhooks: a receiver that never answers does not slow the rooms', { skip: SKIP }, () => {
  const SECRET = hookSecret()
  const hang = new WebhookReceiver({ secret: SECRET, mode: 'hang' })
  // more rooms than the webhook's queue holds (webhook.DefaultQueueSize, 1000): the queue
  // behind the hung delivery fills up and overflows while the rooms are measured
  const FLOOD_ROOMS = 1100
  let plain, hooked
  before(async () => {
    await hang.start()
    plain = await startServer({ wiredbDirectives: ['http_api'] })
    hooked = await startServer({
      wiredbDirectives: ['http_api', ...webhookLines(hang.url, { secret: SECRET, debounce: '50ms', timeout: '5s' })]
    })
  })
  after(async () => {
    if (plain) await plain.close()
    if (hooked) await hooked.close()
    await hang.close()
  })

  /** one POST to each of `n` fresh rooms, 16 at a time; resolves to the latencies */
  async function flood (srv, n) {
    const ms = []
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++
        const r = await postUpdate(srv, freshRoom(`flood${i}`), new Backend().edit((d) => d.getText('text').insert(0, `flood ${i}`)))
        assert.equal(r.status, 200, brief(r))
        ms.push(r.ms)
      }
    }))
    return ms
  }

  test('edits/s and POST latency with no webhook vs with a hanging webhook whose queue overflows', { timeout: 120000 }, withServer(() => hooked, async (t, hk) => {
    const N = 2000
    const ROUNDS = 5
    // warm-up
    await measureEditRate(plain, freshRoom('warm'), 500)
    await measureEditRate(hk, freshRoom('warm'), 500)

    // many rooms change: one room.changed each, all queued behind the hung delivery
    const fl = {}
    for (const [name, srv] of [['plain', plain], ['hang', hk]]) {
      const t0 = performance.now()
      fl[name] = await flood(srv, FLOOD_ROOMS)
      t.diagnostic(`${name}: ${FLOOD_ROOMS} rooms created by POST in ${fmt(performance.now() - t0, 0)} ms, POST median ${fmt(median(fl[name]))} ms p90 ${fmt(quantile(fl[name], 0.9))} ms max ${fmt(Math.max(...fl[name]))} ms`)
    }
    // the hanging receiver was really being called (else this measures nothing), and its queue overflowed
    await hang.waitEvents({ event: 'room.changed' }, 1, { timeout: 10000 })
    await waitFor(() => /webhook queue full/.test(hk.log()), { timeout: 10000, message: 'the server to log that the webhook queue is full' })

    const rates = { plain: [], hang: [] }
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, srv] of [['plain', plain], ['hang', hk]]) {
        const r = await measureEditRate(srv, freshRoom(`rate-${name}`), N, { timeout: 30000 })
        rates[name].push(r.perSec)
      }
    }
    const mPlain = median(rates.plain)
    const mHang = median(rates.hang)
    const ratio = mHang / mPlain
    t.diagnostic(`edits/s (${N} one-character updates, writer -> reader, median of ${ROUNDS}): no webhook ${fmt(mPlain, 0)} [${rates.plain.map((x) => fmt(x, 0)).join(', ')}], hanging webhook with a full queue ${fmt(mHang, 0)} [${rates.hang.map((x) => fmt(x, 0)).join(', ')}], ratio ${fmt(ratio, 2)}`)

    const lat = { plain: [], hang: [] }
    for (const [name, srv] of [['plain', plain], ['hang', hk]]) {
      const room = freshRoom(`lat-${name}`)
      const c = await connectClient(srv.wsBase, room, { name: `lat-${name}` })
      try {
        const b = new Backend()
        for (let i = 0; i < 50; i++) {
          const r = await postUpdate(srv, room, b.edit((d) => d.getArray('array').push([i])))
          assert.equal(r.status, 200, `${name}: ${brief(r)}`)
          lat[name].push(r.ms)
          // spread them over several debounce windows, so the hook fires meanwhile
          if (i % 10 === 9) await sleep(60)
        }
        await waitFor(() => c.array().length === 50, { timeout: 5000, message: `${name}: the client to receive the 50 POSTs` })
      } finally {
        await c.destroy()
      }
    }
    const lp = median(lat.plain)
    const lh = median(lat.hang)
    t.diagnostic(`POST latency (50 POSTs, 1 client): no webhook median ${fmt(lp)} ms p90 ${fmt(quantile(lat.plain, 0.9))} ms; hanging webhook median ${fmt(lh)} ms p90 ${fmt(quantile(lat.hang, 0.9))} ms`)
    const drops = (hk.log().match(/webhook queue full/g) || []).length
    t.diagnostic(`the hanging receiver holds ${hang.requests.length} unanswered request(s) on ${hang.sockets.size} connection(s); "webhook queue full" logged ${drops} time(s)`)

    // stopping the server does not wait for the hung delivery
    const t0 = performance.now()
    const stopped = await hk.stop()
    t.diagnostic(`the server with a hung delivery and a full queue stopped in ${fmt(performance.now() - t0, 0)} ms: ${JSON.stringify(stopped)}`)

    assert.ok(ratio > 0.5, `with a hanging webhook the room relays ${fmt(mHang, 0)} edits/s, ${fmt(ratio, 2)}x of ${fmt(mPlain, 0)} without one`)
    // a POST that waited for the hook would take the delivery timeout (5 s)
    assert.ok(lh < 1000 && median(fl.hang) < 1000, `POSTs wait for the hanging webhook: median ${fmt(lh)} ms, ${fmt(median(fl.hang))} ms while flooding`)
    assert.ok(stopped.graceful, 'the server exits within 10 s of SIGTERM despite the hung delivery')
  }))
})
