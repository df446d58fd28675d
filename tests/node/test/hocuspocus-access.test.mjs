// Hocuspocus providers on a `jwt` route (issue 16): the provider's `token` is checked per
// document name (claims `rooms` globs, `scope` read|write, `exp`); an empty token falls back
// to `?token=` in the URL. Write scope: authenticated "read-write", edits stored. Read scope:
// "readonly", edits dropped (never stored, never relayed, never acknowledged). Refused: the
// provider gets authenticationFailed with a reason and nothing is stored. A bad token in the
// URL is refused (401) before the upgrade; a y-websocket client without a token is upgraded,
// then closed with 1008 and a reason.
//
// WIREDB_HP_SERVER=reference runs the provider-side cases against @hocuspocus/server with an
// onAuthenticate hook that applies the same rules (to check the tests themselves).
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { TestServer, withServer, IS_CADDY } from '../lib/server.js'
import { Y, Client, destroyAll, freshRoom, sleep, waitFor } from '../lib/clients.js'
import { openRaw, msgSyncStep1 } from '../lib/raw.js'
import { roomFile, readWireFile, docFromWireFile } from '../lib/wirefile.js'
import { tryUpgrade, closeWs, signJwt, nowSec, hsSecret } from '../lib/access.js'
import { HpClient, connectHp, destroyHp, hpSocket, hpUrl, waitSame, startReferenceServer } from '../lib/hocuspocus.js'

const REFERENCE = process.env.WIREDB_HP_SERVER === 'reference'
const SKIP_ALL = !IS_CADDY && !REFERENCE ? 'the y-websocket reference server has neither Hocuspocus nor jwt' : false
const caddyOnly = (why) => SKIP_ALL || (REFERENCE ? `reference server (@hocuspocus/server): ${why}` : false)

const SECRET = hsSecret()
const hs = (claims) => signJwt(claims, { alg: 'HS256', key: SECRET })
const claims = (rooms, scope, extra = {}) => ({ exp: nowSec() + 600, rooms, ...(scope === undefined ? {} : { scope }), ...extra })

/** the same rules in an onAuthenticate hook of the reference server (exact room names only) */
function referenceAuth ({ token, documentName, requestParameters, connectionConfig }) {
  // the reference server sends error.reason with its permission-denied message
  const refuse = (reason) => { throw Object.assign(new Error(reason), { reason }) }
  const tok = token || requestParameters.get('token') || ''
  if (!tok) refuse('missing token')
  const [h, p, s] = tok.split('.')
  const sig = crypto.createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')
  if (sig !== s) refuse('invalid token')
  const c = JSON.parse(Buffer.from(p, 'base64url').toString())
  if (c.exp < nowSec() - 30) refuse('token expired')
  if (!(c.rooms || []).includes(documentName)) refuse(`token does not grant room ${documentName}`)
  connectionConfig.readOnly = c.scope !== 'write'
}

let server
before(async () => {
  if (SKIP_ALL) return
  if (REFERENCE) { server = await startReferenceServer({ onAuthenticate: referenceAuth }); return }
  server = new TestServer({ wiredbDirectives: ['fsync always', 'jwt {', `\tkey ${SECRET}`, '}'] })
  await server.start()
})
after(async () => { if (server) await server.close() })
const URL = (query = '') => (REFERENCE ? server.url + query : hpUrl(server, query))
const run = (fn) => (REFERENCE ? (t) => fn(t, server) : withServer(() => server, fn))

/** clientIDs of every struct and delete in a room file */
function clientsInFile (file) {
  const ids = new Set()
  for (const r of readWireFile(file).records) {
    const u = Y.decodeUpdate(r)
    for (const st of u.structs) ids.add(st.id.client)
    for (const c of u.ds.clients.keys()) ids.add(c)
  }
  return ids
}

describe('Hocuspocus tokens on a jwt route', { skip: SKIP_ALL }, () => {
  test('a write token: authenticated read-write, edits shared, acknowledged and stored', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('hpjw')
    const clients = []
    try {
      const a = await connectHp(URL(), room, { token: hs(claims([room], 'write')), label: 'a' })
      const b = await connectHp(URL(), room, { token: hs(claims([room], 'write')), major: 3, label: 'b3' })
      clients.push(a, b)
      await waitFor(() => a.scopes.length && b.scopes.length, { message: 'both authenticated' })
      assert.deepEqual(a.scopes, ['read-write'])
      assert.deepEqual(b.scopes, ['read-write'])
      a.text().insert(0, 'from a;')
      b.map().set('b', 'from b')
      await waitSame(clients)
      await a.waitAcked()
      await b.waitAcked()
      if (!REFERENCE) {
        const d = docFromWireFile(roomFile(srv.dataDir, room))
        assert.equal(d.getText('text').toString(), 'from a;')
        assert.equal(d.getMap('map').get('b'), 'from b')
      }
    } finally {
      await destroyHp(clients)
    }
  }))

  test('a read-scope token: authenticated readonly; reads the document and live edits; its edits reach nobody, are not acknowledged, not stored', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('hpjr')
    const side = freshRoom('hpjrside')
    const items = []
    try {
      const w = await connectHp(URL(), room, { token: hs(claims([room], 'write')), label: 'writer' })
      items.push(w)
      w.text().insert(0, 'doc;')
      await w.waitAcked()
      // the reader shares its socket with a writable side document: its acknowledgements
      // are the barrier (the server reads one socket's frames in order)
      const socket = hpSocket(URL())
      items.push(socket)
      const r = new HpClient(null, room, { socket, token: hs(claims([room], 'read')), label: 'reader' })
      const s = new HpClient(null, side, { socket, token: hs(claims([side], 'write')), label: 'side' })
      items.push(r, s)
      await r.waitSynced()
      await s.waitSynced()
      await waitFor(() => r.scopes.length, { message: 'the reader authenticated', describe: () => r.describe() })
      assert.deepEqual(r.scopes, ['readonly'])
      assert.equal(r.provider.authorizedScope, 'readonly')
      assert.equal(r.text().toString(), 'doc;', 'the reader got the document')
      t.diagnostic(`reader's unsyncedChanges after its first sync: ${r.unsynced}`)

      const before = r.unsynced
      r.text().insert(0, 'EVIL;')
      r.map().set('evil', true)
      assert.equal(r.unsynced, before + 2)
      s.map().set('barrier', 1)
      await s.waitAcked()
      await sleep(300)
      assert.equal(w.text().toString(), 'doc;', 'the reader\'s edit must not reach the writer')
      assert.equal(w.map().get('evil'), undefined)
      assert.ok(r.unsynced >= before + 2, `the reader's dropped edits are not acknowledged (unsyncedChanges ${r.unsynced})`)
      await waitFor(() => r.acks().refused >= 2, { message: 'SyncStatus false for the reader\'s two dropped updates', describe: () => JSON.stringify(r.acks()) })

      // it still reads live edits
      w.text().insert(w.text().length, 'live;')
      await waitFor(() => r.text().toString().endsWith('doc;live;'), { message: 'a live edit at the reader', describe: () => r.describe() })
      await w.waitAcked()
      // nothing of the reader stored; a late writer does not get it
      if (!REFERENCE) {
        const ids = clientsInFile(roomFile(srv.dataDir, room))
        assert.ok(ids.has(w.doc.clientID))
        assert.ok(!ids.has(r.doc.clientID), 'the room file holds structs of the reader')
      }
      const late = await connectHp(URL(), room, { token: hs(claims([room], 'write')), label: 'late' })
      items.push(late)
      assert.equal(late.text().toString(), 'doc;live;')
      assert.equal(late.map().get('evil'), undefined)
      assert.deepEqual(r.closes, [], 'the reader stays connected')
    } finally {
      await destroyHp(items)
    }
  }))

  test('refused tokens (another room, expired, missing, bad signature): authenticationFailed with a reason, nothing stored; other documents on the socket unaffected', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('hpjx')
    const ok = freshRoom('hpjok')
    const items = []
    try {
      const cases = [
        ['another room', hs(claims(['some-other-room', `${room}x`], 'write')), new RegExp(`does not grant room ${room}`)],
        ['expired', hs(claims([room], 'write', { exp: nowSec() - 120 })), /token expired/],
        ['missing', null, /missing token/],
        ['signed with another secret', signJwt(claims([room], 'write'), { key: hsSecret() }), /invalid token/]
      ]
      for (const [label, token, reason] of cases) {
        const c = new HpClient(URL(), room, { token, label })
        items.push(c)
        const got = await c.waitAuthFailed()
        t.diagnostic(`${label}: authenticationFailed ${JSON.stringify(got)}`)
        assert.match(got, reason, `${label}: the reason`)
        assert.equal(c.synced, false, `${label}: not synced`)
        assert.deepEqual(c.scopes, [], `${label}: never authenticated`)
        // it edits anyway: nothing may land
        c.text().insert(0, `EVIL ${label};`)
      }
      // per document: a refused document next to an accepted one on one socket
      const socket = hpSocket(URL())
      items.push(socket)
      const bad = new HpClient(null, room, { socket, token: hs(claims([ok], 'write')), label: 'shared-bad' })
      const good = new HpClient(null, ok, { socket, token: hs(claims([ok], 'write')), label: 'shared-good' })
      items.push(bad, good)
      assert.match(await bad.waitAuthFailed(), /does not grant room/)
      await good.waitSynced()
      good.text().insert(0, 'fine')
      await good.waitAcked()
      const peer = await connectHp(URL(), ok, { token: hs(claims([ok], 'read')), label: 'peer' })
      items.push(peer)
      assert.equal(peer.text().toString(), 'fine')
      bad.text().insert(0, 'EVIL shared;')
      good.map().set('barrier', 1)
      await good.waitAcked()
      await sleep(200)
      if (!REFERENCE) assert.ok(!fs.existsSync(roomFile(srv.dataDir, room)), 'refused documents created the room')
      const w = await connectHp(URL(), room, { token: hs(claims([room], 'write')), label: 'w' })
      items.push(w)
      assert.equal(w.text().toString(), '', 'nothing of the refused providers reached the room')
    } finally {
      await destroyHp(items)
    }
  }))

  test('an empty provider token falls back to ?token= in the URL', { timeout: 30000, skip: caddyOnly('the hook here reads it too, but only the Caddy contract is tested') }, run(async (t, srv) => {
    const room = freshRoom('hpjq')
    const items = []
    try {
      const a = await connectHp(URL(`?token=${encodeURIComponent(hs(claims([room], 'write')))}`), room, { label: 'url-write' })
      items.push(a)
      assert.deepEqual(a.scopes, ['read-write'])
      a.text().insert(0, 'via url token')
      await a.waitAcked()
      const r = await connectHp(URL(`?token=${encodeURIComponent(hs(claims([room], 'read')))}`), room, { label: 'url-read' })
      items.push(r)
      assert.deepEqual(r.scopes, ['readonly'])
      assert.equal(r.text().toString(), 'via url token')
      // the provider's own token wins over the URL's
      const p = await connectHp(URL(`?token=${encodeURIComponent(hs(claims([room], 'read')))}`), room, { token: hs(claims([room], 'write')), label: 'own-wins' })
      items.push(p)
      assert.deepEqual(p.scopes, ['read-write'])
    } finally {
      await destroyHp(items)
    }
  }))

  test('a bad token in the URL is refused before the upgrade (401 with the reason)', { timeout: 30000, skip: caddyOnly('an HTTP refusal is the Caddy route\'s') }, run(async (t, srv) => {
    const room = freshRoom('hpju')
    for (const [label, tok, body] of [
      ['garbage', 'not.a.jwt', /invalid token/],
      ['expired', hs(claims([room], 'write', { exp: nowSec() - 120 })), /token expired/],
      ['another secret', signJwt(claims([room], 'write'), { key: hsSecret() }), /invalid token/]
    ]) {
      const r = await tryUpgrade(URL(`?token=${encodeURIComponent(tok)}`))
      if (r.open) { await closeWs(r.ws); assert.fail(`${label}: the upgrade succeeded`) }
      t.diagnostic(`${label}: ${r.status} ${JSON.stringify(r.body.trim())}`)
      assert.equal(r.status, 401, `${label}: status`)
      assert.match(r.body, body, `${label}: body`)
    }
  }))

  test('a y-websocket client without a token on the jwt route is upgraded, then closed with 1008 and a reason', { timeout: 30000, skip: caddyOnly('no y-websocket') }, run(async (t, srv) => {
    const room = freshRoom('hpjy')
    const raw = await openRaw(srv.roomUrl(room))
    let y
    try {
      await raw.send(msgSyncStep1(Y.encodeStateVector(new Y.Doc())))
      const close = await raw.waitClose(5000)
      t.diagnostic(`raw y-websocket: ${close.code} ${JSON.stringify(close.reason)}`)
      assert.equal(close.code, 1008)
      assert.ok(close.reason.length > 0, 'a reason')
      assert.ok(!raw.messages.some((m) => m.type === 'sync' && m.sub === 'step2'), 'no document sent to it')
      // the real client: its (first) connection ends the same way
      y = new Client(srv.wsBase, room, { name: 'yws-no-token' })
      await waitFor(() => y.closes.length > 0, { message: 'the y-websocket client to be closed', describe: () => y.describe() })
      assert.equal(y.closes[0].code, 1008, y.describe())
      assert.equal(y.synced, false)
      assert.ok(!fs.existsSync(roomFile(srv.dataDir, room)), 'no room created')
    } finally {
      await raw.end()
      await destroyAll([y])
    }
  }))
})
