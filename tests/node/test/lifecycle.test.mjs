// Server lifecycle under traffic (DESIGN §5 durability contract, §6 shutdown, §5 one hub per
// data directory across `caddy reload`): kill -9 at random moments, SIGTERM, config reloads.
// Each test starts its own server (on 127.0.0.1, a fresh temp data dir) and ends only it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { startServer, withServer, caddyOnly, httpRequest } from '../lib/server.js'
import {
  Y, prng, connectClient, connectClients, destroyAll, freshRoom, sleep,
  waitFor, waitConverged, assertConverged, docDiff
} from '../lib/clients.js'
import { roomFile, readWireFile, docFromWireFile } from '../lib/wirefile.js'

const SEED = Number(process.env.WIREDB_SEED || Date.now() % 1000000)

/** the roots the stream writers use */
const LOG_ROOTS = { log: 'array', text: 'text', map: 'map' }
const RICH_ROOTS = { text: 'text', map: 'map', array: 'array', prosemirror: 'xml' }

function copyDoc (doc) {
  const d = new Y.Doc()
  Y.applyUpdate(d, Y.encodeStateAsUpdate(doc))
  return d
}

/** a Y.Doc from the whole records of a room file (a torn tail is ignored; pending kept) */
function docFromRecords (records) {
  const d = new Y.Doc()
  for (const r of records) Y.applyUpdate(d, r)
  return d
}

/**
 * null if `sub` holds nothing that `sup` lacks (no struct, no deletion), else a difference:
 * applying sub's whole state to a copy of sup must change nothing.
 */
function notContained (sup, sub, roots) {
  const merged = copyDoc(sup)
  Y.applyUpdate(merged, Y.encodeStateAsUpdate(sub))
  return docDiff(sup, merged, roots)
}

const TOKEN = /\[(w\d+:\d+)\]/g

/** labels w<i>:<n> in the 'log' array and the [w<i>:<n>] tokens of the text */
function labelsOf (doc, { exceptWriter } = {}) {
  const out = new Set()
  const skip = exceptWriter == null ? null : `w${exceptWriter}:`
  for (const e of doc.getArray('log').toArray()) {
    if (typeof e === 'string' && (!skip || !e.startsWith(skip))) out.add(e)
  }
  for (const m of doc.getText('text').toString().matchAll(TOKEN)) {
    if (!skip || !m[1].startsWith(skip)) out.add('t' + m[1])
  }
  return out
}

function missingLabels (have, want) {
  const miss = []
  for (const l of want) if (!have.has(l)) miss.push(l)
  return miss
}

/**
 * A client that appends uniquely labelled entries at a steady pace: every tick pushes
 * `w<i>:<n>` to the 'log' array; every 3rd tick also inserts `[w<i>:<n>]` at the end of the
 * text (in the same transaction, every other time); every 7th tick overwrites map key w<i>
 * (a deletion). It keeps editing while disconnected (offline edits, sent on reconnect).
 */
class StreamWriter {
  constructor (client, i) {
    this.client = client
    this.i = i
    this.n = 0
    this.timer = null
  }

  tick () {
    const c = this.client
    if (c.destroyed) return
    const n = this.n++
    const label = `w${this.i}:${n}`
    const pushLog = () => c.doc.getArray('log').push([label])
    const insText = () => { const t = c.doc.getText('text'); t.insert(t.length, `[${label}]`) }
    if (n % 3 === 0) {
      if (n % 6 === 0) c.doc.transact(() => { pushLog(); insText() })
      else { pushLog(); insText() }
    } else pushLog()
    if (n % 7 === 0) c.doc.getMap('map').set(`w${this.i}`, n)
  }

  start (paceMs) { if (!this.timer) this.timer = setInterval(() => this.tick(), paceMs) }
  stop () { if (this.timer) { clearInterval(this.timer); this.timer = null } }

  /** every label this writer produced */
  produced () {
    const out = new Set()
    for (let n = 0; n < this.n; n++) {
      out.add(`w${this.i}:${n}`)
      if (n % 3 === 0) out.add(`tw${this.i}:${n}`)
    }
    return out
  }
}

/** wraps a test that starts its own server: prints its log on failure, always closes it */
async function withOwnServer (t, opts, fn) {
  const srv = await startServer(opts)
  try {
    await withServer(() => srv, fn)(t)
  } finally {
    await srv.close()
  }
}

// ---------------------------------------------------------------------------

test('kill -9 at 20 random moments during a stream of edits: every update any peer received is present after restart', { timeout: 150000, skip: caddyOnly('the reference server keeps documents in memory only') }, async (t) => {
  const KILLS = 20
  const WRITERS = 3
  const PACE_MS = 20
  const POLICIES = ['fsync never', 'fsync interval 1s', 'fsync always']
  // a small compaction bound on some runs, so that kills also land during compactions
  const COMPACTS = [[], ['compact 100'], ['compact 400']]
  const policyOf = (k) => [POLICIES[k % POLICIES.length], ...COMPACTS[Math.floor(k / POLICIES.length) % COMPACTS.length]]
  t.diagnostic(`seed ${SEED} (repeat with WIREDB_SEED=${SEED})`)
  const gen = prng.create(SEED)

  await withOwnServer(t, { wiredbDirectives: policyOf(0) }, async (t2, srv) => {
    const room = freshRoom('kill-stream')
    const file = roomFile(srv.dataDir, room)
    const clients = []
    const writers = []
    let fresh = null
    try {
      const ws = await connectClients(srv.wsBase, room, WRITERS, { namePrefix: 'writer-' })
      clients.push(...ws)
      const observers = await connectClients(srv.wsBase, room, 2, { namePrefix: 'observer-' })
      clients.push(...observers)
      ws.forEach((c, i) => writers.push(new StreamWriter(c, i)))
      // staggered starts, so the writers' ticks do not line up
      for (const w of writers) { w.start(PACE_MS); await sleep(prng.int32(gen, 1, PACE_MS)) }

      const t0 = Date.now()
      let lastSeen = new Set()
      let cyclesWithNew = 0
      const stats = []
      for (let k = 0; k < KILLS; k++) {
        // the random moment: mostly during a synced stream, sometimes while the clients are
        // still resyncing (sending their offline edits) right after a restart
        const duringResync = k > 0 && prng.int32(gen, 0, 3) === 0
        let delay
        if (duringResync) {
          delay = prng.int32(gen, 0, 300)
        } else {
          await Promise.all(clients.map((c) => c.waitSynced(15000)))
          delay = prng.int32(gen, 150, 1500)
        }
        await sleep(delay)

        // snapshot what peers received, BEFORE the kill: observers' whole docs, and what each
        // writer received from the other writers (its own entries may not have been sent yet)
        const snaps = observers.map((o) => copyDoc(o.doc))
        const seen = new Set()
        for (const s of snaps) for (const l of labelsOf(s)) seen.add(l)
        writers.forEach((w) => { for (const l of labelsOf(w.client.doc, { exceptWriter: w.i })) seen.add(l) })
        const policy = policyOf(k)
        await srv.kill9()
        // no client may reconnect (and resend what it has) before the restarted server's own
        // state is checked
        for (const c of clients) c.disconnect()

        // 1. the file on disk, as the killed process left it (write(2) before relay)
        let fileDoc = new Y.Doc()
        let parsed = { records: [], torn: 0, size: 0 }
        if (fs.existsSync(file)) {
          parsed = readWireFile(file)
          fileDoc = docFromRecords(parsed.records)
        }
        const fileLabels = labelsOf(fileDoc)
        const missFile = missingLabels(fileLabels, seen)
        assert.deepEqual(missFile.slice(0, 20), [], `kill #${k + 1} (${policy.join(', ')}): ${missFile.length} of ${seen.size} entries that peers had received are not in the room file after kill -9 (file: ${parsed.records.length} records, ${parsed.size} bytes, torn tail ${parsed.torn})`)
        snaps.forEach((s, j) => {
          const d = notContained(fileDoc, s, LOG_ROOTS)
          assert.equal(d, null, `kill #${k + 1}: observer-${j} had received something the room file lacks: ${d}`)
        })

        // 2. restart (next fsync policy) on the same port and data dir; a fresh client must
        // get everything from the server alone
        srv.opts.wiredbDirectives = policyOf(k + 1)
        await srv.start()
        fresh = await connectClient(srv.wsBase, room, { name: `fresh-${k + 1}`, timeout: 15000 })
        const freshLabels = labelsOf(fresh.doc)
        const missFresh = missingLabels(freshLabels, seen)
        assert.deepEqual(missFresh.slice(0, 20), [], `kill #${k + 1} (${policy.join(', ')}): ${missFresh.length} of ${seen.size} entries that peers had received are missing after the restart`)
        snaps.forEach((s, j) => {
          const d = notContained(fresh.doc, s, LOG_ROOTS)
          assert.equal(d, null, `kill #${k + 1}: after the restart the server lacks something observer-${j} had received: ${d}`)
        })
        await fresh.destroy(); fresh = null

        const newSeen = missingLabels(lastSeen, seen).length
        if (newSeen > 0) cyclesWithNew++
        lastSeen = seen
        stats.push(`#${k + 1} ${policy.join('+')} ${duringResync ? 'resync' : 'stream'} +${delay}ms seen=${seen.size} (+${newSeen}) file=${parsed.records.length}rec/${parsed.size}B torn=${parsed.torn}`)

        for (const c of clients) c.connect()
      }
      for (const line of stats) t2.diagnostic(line)
      t2.diagnostic(`${KILLS} kills in ${Date.now() - t0} ms; ${lastSeen.size} entries seen at the last kill`)
      // not vacuous: peers kept receiving new entries between kills
      assert.ok(cyclesWithNew >= KILLS / 2, `peers received new entries before only ${cyclesWithNew} of ${KILLS} kills`)

      // the end: stop editing, everyone resyncs and converges; nothing any writer made is lost
      for (const w of writers) w.stop()
      await Promise.all(clients.map((c) => c.waitSynced(15000)))
      await waitConverged(clients, { roots: LOG_ROOTS, timeout: 20000 })
      const all = new Set()
      for (const w of writers) for (const l of w.produced()) all.add(l)
      const miss = missingLabels(labelsOf(observers[0].doc), all)
      assert.deepEqual(miss.slice(0, 20), [], `${miss.length} of ${all.size} entries the writers made are missing after convergence`)
      const ref = copyDoc(observers[0].doc)
      await destroyAll(clients)
      const stopped = await srv.stop()
      assert.ok(stopped.graceful && stopped.code === 0, `graceful stop with exit code 0, got ${JSON.stringify(stopped)}`)
      const parsed = readWireFile(file)
      assert.equal(parsed.torn, 0, 'no torn record after the final stop')
      const fromFile = docFromWireFile(file)
      assert.equal(docDiff(ref, fromFile, LOG_ROOTS), null, 'the room file holds exactly the converged document')
      t2.diagnostic(`final file: ${parsed.records.length} record(s), ${parsed.size} bytes, ${all.size} entries`)
    } finally {
      for (const w of writers) w.stop()
      await destroyAll([...clients, fresh])
    }
  })
})

test('SIGTERM flushes everything: exit code 0, clients see 1001, each room file holds the clients\' document in 1 record', { timeout: 90000, skip: caddyOnly('needs wiredb\'s shutdown, close codes and files') }, async (t) => {
  await withOwnServer(t, {}, async (t2, srv) => {
    const rooms = [freshRoom('term-a'), freshRoom('term-b')]
    const liveRoom = freshRoom('term-live')
    const byRoom = []
    const all = []
    let liveWriter = null
    try {
      // a third room still streaming when SIGTERM arrives
      const [lw, lobs] = await connectClients(srv.wsBase, liveRoom, 2, { namePrefix: 'term-live-' })
      all.push(lw, lobs)
      liveWriter = new StreamWriter(lw, 0)
      liveWriter.start(10)
      for (const room of rooms) {
        const cs = await connectClients(srv.wsBase, room, 2, { namePrefix: `${room.slice(0, 6)}-` })
        byRoom.push(cs); all.push(...cs)
      }
      // many small updates from every client (fewer than the compaction bound: a tail on disk)
      for (let i = 0; i < 120; i++) {
        for (const [r, cs] of byRoom.entries()) {
          const c = cs[i % cs.length]
          c.array().push([`r${r}:${i}`])
          if (i % 4 === 0) c.text().insert(c.text().length, `<${c.name}:${i}> `)
          if (i % 5 === 0) c.map().set(`k${i % 3}`, { i, by: c.name })
          if (i % 10 === 0) {
            const p = new Y.XmlElement('paragraph')
            p.setAttribute('i', String(i))
            p.insert(0, [new Y.XmlText(`paragraph ${i}`)])
            c.xml().insert(c.xml().length, [p])
          }
          if (i % 9 === 0 && c.text().length > 4) c.text().delete(1, 2)
          if (i % 12 === 0 && c.text().length > 6) c.text().format(0, 5, { bold: true })
        }
        if (i % 10 === 0) await sleep(5)
      }
      for (const cs of byRoom) await waitConverged(cs, { roots: RICH_ROOTS })
      for (const room of rooms) {
        const before = readWireFile(roomFile(srv.dataDir, room))
        t2.diagnostic(`${room} before SIGTERM: ${before.records.length} records, ${before.size} bytes`)
        assert.ok(before.records.length > 1, `precondition: ${room} has an uncompacted tail before SIGTERM (${before.records.length} records)`)
      }

      await waitFor(() => lobs.array('log').length >= 50, { timeout: 10000, message: 'the live room\'s observer to receive 50 entries' })

      const t0 = Date.now()
      const stopped = await srv.stop()
      liveWriter.stop()
      const ms = Date.now() - t0
      t2.diagnostic(`SIGTERM -> exit in ${ms} ms: ${JSON.stringify(stopped)}`)
      assert.ok(stopped.graceful, `the server exits by itself after SIGTERM (harness gives it 10 s), took ${ms} ms`)
      assert.ok(ms < 15000, `exit within 15 s of SIGTERM, took ${ms} ms`)
      assert.equal(stopped.signal, null, 'exited, not killed by a signal')
      assert.equal(stopped.code, 0, 'exit code 0 after SIGTERM')

      await waitFor(() => all.every((c) => c.closes.length > 0), { timeout: 5000, message: 'every client to see its connection close', describe: () => all.map((c) => c.describe()).join('\n') })
      for (const c of all) {
        assert.equal(c.closes[0].code, 1001, `${c.name} was closed with 1001 (going away), got ${JSON.stringify(c.closes)}`)
      }
      for (const c of all) c.disconnect() // no more reconnect attempts

      for (const [r, room] of rooms.entries()) {
        const file = roomFile(srv.dataDir, room)
        const parsed = readWireFile(file)
        t2.diagnostic(`${room} after SIGTERM: ${parsed.records.length} record(s), ${parsed.size} bytes, torn ${parsed.torn}`)
        assert.equal(parsed.torn, 0, `${room}: no torn record after a graceful stop`)
        const fromFile = docFromWireFile(file)
        for (const c of byRoom[r]) {
          assert.equal(docDiff(c.doc, fromFile, RICH_ROOTS), null, `${room}: the file holds exactly what ${c.name} had`)
        }
        assert.equal(parsed.records.length, 1, `${room}: compacted to exactly 1 record on shutdown`)
      }
      // the room that was streaming: the file holds everything the observer received, and
      // nothing the writer did not make; still one record (nothing appended after the compaction)
      const liveFile = roomFile(srv.dataDir, liveRoom)
      const live = readWireFile(liveFile)
      const liveDoc = docFromWireFile(liveFile)
      t2.diagnostic(`${liveRoom} after SIGTERM: ${live.records.length} record(s), ${live.size} bytes; observer had ${lobs.array('log').length} entries, writer made ${liveWriter.n}, file has ${liveDoc.getArray('log').length}`)
      assert.equal(live.torn, 0, `${liveRoom}: no torn record`)
      assert.equal(notContained(liveDoc, lobs.doc, LOG_ROOTS), null, `${liveRoom}: the file holds everything the observer had received`)
      assert.equal(notContained(lw.doc, liveDoc, LOG_ROOTS), null, `${liveRoom}: the file holds nothing but the writer's edits`)
      assert.equal(live.records.length, 1, `${liveRoom}: compacted to exactly 1 record on shutdown, although updates were arriving`)
    } finally {
      if (liveWriter) liveWriter.stop()
      await destroyAll(all)
    }
  })
})

test('caddy reload under traffic: no disconnect, no loss; the new config takes effect', { timeout: 120000, skip: caddyOnly('needs Caddy\'s admin API') }, async (t) => {
  const RELOADS = 5
  const WRITERS = 3
  await withOwnServer(t, { admin: true }, async (t2, srv) => {
    const room = freshRoom('reload')
    const clients = []
    const writers = []
    const joiners = []
    try {
      // before any reload: no /health route (Caddy answers an unmatched request with an empty 200)
      const pre = await httpRequest(`${srv.url}/health`)
      assert.notEqual(pre.body, 'reload-0', 'no /health route before the reloads')

      const ws = await connectClients(srv.wsBase, room, WRITERS, { namePrefix: 'rw-' })
      clients.push(...ws)
      const [observer] = await connectClients(srv.wsBase, room, 1, { namePrefix: 'robs-' })
      clients.push(observer)
      ws.forEach((c, i) => writers.push(new StreamWriter(c, i)))
      for (const w of writers) { w.start(15); await sleep(5) }
      const sockets = clients.map((c) => c.provider.ws)
      await sleep(300)

      for (let i = 0; i < RELOADS; i++) {
        const via = i % 2 === 0 ? 'api' : 'cli'
        const r = await srv.reload({
          siteDirectives: [`respond /health "reload-${i}" 200`],
          wiredbDirectives: [`compact ${200 + 100 * i}`]
        }, { via })
        // the new config is live
        const res = await httpRequest(`${srv.url}/health`)
        const body = res.body
        assert.equal(res.status, 200, `GET /health after reload ${i + 1}`)
        assert.equal(body, `reload-${i}`, `GET /health answers the route of reload ${i + 1}`)
        // the old connections still relay: the observer gets entries written after the reload
        const marks = writers.map((w) => `w${w.i}:${w.n}`)
        await waitFor(() => { const have = new Set(observer.array('log').toArray()); return marks.every((m) => have.has(m)) },
          { timeout: 10000, message: `observer to receive ${marks.join(', ')} after reload ${i + 1}`, describe: () => clients.map((c) => c.describe()).join('\n') })
        // and a new connection is served by the new config
        const j = await connectClient(srv.wsBase, room, { name: `joiner-${i}`, timeout: 10000 })
        joiners.push(j)
        t2.diagnostic(`reload ${i + 1} via ${via}: ${r.ms} ms; /health=${body}; observer has ${observer.array('log').length} entries`)
        await sleep(200)
      }

      for (const w of writers) w.stop()
      const everyone = [...clients, ...joiners]
      await waitConverged(everyone, { roots: LOG_ROOTS, timeout: 20000 })
      // no websocket closed or was replaced during the reloads
      for (const [k, c] of clients.entries()) {
        assert.deepEqual(c.closes, [], `${c.name}: no connection-close during the reloads`)
        assert.ok(!c.statuses.includes('disconnected'), `${c.name}: never disconnected (statuses ${JSON.stringify(c.statuses)})`)
        assert.equal(c.provider.ws, sockets[k], `${c.name}: still on its first websocket`)
      }
      for (const j of joiners) assert.deepEqual(j.closes, [], `${j.name}: no connection-close`)

      const produced = new Set()
      for (const w of writers) for (const l of w.produced()) produced.add(l)
      const miss = missingLabels(labelsOf(observer.doc), produced)
      assert.deepEqual(miss.slice(0, 20), [], `${miss.length} of ${produced.size} entries missing at the observer`)

      const late = await connectClient(srv.wsBase, room, { name: 'late', timeout: 10000 })
      joiners.push(late)
      assertConverged([observer, late], LOG_ROOTS)
      const ref = copyDoc(observer.doc)

      await destroyAll([...clients, ...joiners])
      const stopped = await srv.stop()
      assert.ok(stopped.graceful && stopped.code === 0, `graceful stop with exit code 0, got ${JSON.stringify(stopped)}`)
      const file = roomFile(srv.dataDir, room)
      const parsed = readWireFile(file)
      assert.equal(parsed.torn, 0)
      assert.equal(docDiff(ref, docFromWireFile(file), LOG_ROOTS), null, 'the room file holds everything after the reloads')
      t2.diagnostic(`${produced.size} entries; file ${parsed.records.length} record(s), ${parsed.size} bytes`)
    } finally {
      for (const w of writers) w.stop()
      await destroyAll([...clients, ...joiners])
    }
  })
})
