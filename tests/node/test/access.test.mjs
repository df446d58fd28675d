// Access control end to end (README "Access control"): read-only routes sharing a data_dir
// with a writable one, read_only_awareness, Caddy's basic_auth in front of a route, the
// same-origin check and `origins`, and signed room tokens (`jwt`, HS256 and ES256).
// Real Caddy, real y-websocket clients; refused upgrades are read from `ws`'s
// 'unexpected-response' (status and body). Every wait is bounded.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { TestServer, withServer, caddyOnly } from '../lib/server.js'
import {
  Y, connectClient, connectClients, destroyAll, freshRoom, sleep, waitFor, waitConverged, stable
} from '../lib/clients.js'
import { openRaw, msgSyncStep1, msgSyncStep2, msgUpdate, msgQueryAwareness, MSG_AUTH } from '../lib/raw.js'
import { roomFile, readWireFile, docFromWireFile } from '../lib/wirefile.js'
import {
  connectAccessClient, AccessClient, tryUpgrade, closeWs, closeAfterFirstMessage, signJwt, withPayload, nowSec, hsSecret,
  bcryptHash, captureWarnings
} from '../lib/access.js'

const SKIP = caddyOnly('read-only routes, basic_auth, origins and jwt are wiredb/Caddy features')

/** starts a TestServer whose site directives are built from its own data dir and temp dir */
async function startWith (opts, siteDirectives) {
  const srv = new TestServer(opts)
  srv.opts.siteDirectives = siteDirectives(srv)
  await srv.start()
  return srv
}

/** `wiredb <matcher> { data_dir <dir>; <lines> }` as site directive lines */
const route = (matcher, dataDir, lines = []) => [
  `wiredb ${matcher} {`, `\tdata_dir ${dataDir}`, ...lines.map((l) => '\t' + l), '}'
]

const seen = (observer, c) => observer.awareness.getStates().get(c.doc.clientID)
const describeAw = (cs) => () => cs.map((c) => `${c.name}(${c.doc.clientID}) sees ${stable([...c.awareness.getStates().entries()])}`).join('\n')
const PERMISSION_DENIED = 'Permission denied to access'

/** clientIDs of every struct and delete in a file's records */
function clientsInFile (file) {
  const ids = new Set()
  for (const r of readWireFile(file).records) {
    const u = Y.decodeUpdate(r)
    for (const s of u.structs) ids.add(s.id.client)
    for (const c of u.ds.clients.keys()) ids.add(c)
  }
  return ids
}

const noFile = (srv, room) => !fs.existsSync(roomFile(srv.dataDir, room))

// ---------------------------------------------------------------------------

describe('read-only routes on a shared data_dir, read_only_awareness, basic_auth', { skip: SKIP }, () => {
  const PASSWORD = 'correct horse battery staple'
  let server
  before(async () => {
    const hash = await bcryptHash(PASSWORD)
    server = await startWith({}, (srv) => [
      '@viewers path /view/*',
      ...route('@viewers', srv.dataDir, ['read_only']),
      '@ghosts path /ghost/*',
      ...route('@ghosts', srv.dataDir, ['read_only', 'read_only_awareness drop']),
      '@private path /private/*',
      'basic_auth @private {',
      `\tviewer ${hash}`,
      '}',
      ...route('@private', srv.dataDir, ['read_only'])
    ])
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)
  const base = (srv, prefix) => `ws://127.0.0.1:${srv.port}/${prefix}`

  test('a read_only client gets the document and live edits; its own edits reach neither the writers nor the file; "permission denied" once', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('ro')
    const file = roomFile(srv.dataDir, room)
    const warn = captureWarnings()
    const clients = []
    try {
      clients.push(...await connectClients(srv.wsBase, room, 2, { namePrefix: 'ro-w' }))
      const [w1, w2] = clients
      w1.text().insert(0, 'written by w1;')
      w1.map().set('k', 'w1')
      await waitConverged([w1, w2])

      const v = await connectAccessClient(base(srv, 'view'), room, { name: 'ro-viewer' })
      clients.push(v)
      await waitFor(() => v.text().toString() === 'written by w1;' && v.map().get('k') === 'w1',
        { message: 'the viewer to receive the document', describe: () => JSON.stringify(v.doc.toJSON()) })

      // live edits reach the viewer
      w2.text().insert(w2.text().length, 'live from w2;')
      w2.map().set('live', 2)
      await waitFor(() => v.text().toString().endsWith('live from w2;') && v.map().get('live') === 2,
        { message: 'a live edit at the viewer', describe: () => JSON.stringify(v.doc.toJSON()) })
      await waitConverged([w1, w2, v], { message: 'viewer and writers to hold the same document' })

      // y-websocket answered the server's sync step 1 with its (empty) step 2: the
      // server refused it with the auth message, which y-websocket logs
      await waitFor(() => warn.lines.some((l) => l.includes(PERMISSION_DENIED) && l.includes(v.url)),
        { timeout: 5000, message: 'y-websocket to log "permission denied" for the viewer', describe: () => JSON.stringify(warn.lines) })

      // every writer update so far has been relayed, so it is in the file (written before relay)
      const before = fs.readFileSync(file)

      v.text().insert(0, 'EVIL;')
      v.map().set('evil', true)
      v.doc.getArray('array').push(['evil'])
      v.text().delete(v.text().length - 3, 3) // a deletion of the writers' text
      // barrier: the viewer's awareness is sent on the same connection after its edits and
      // relayed (default read_only_awareness relay); once the writers see it, the server
      // has handled the edits
      v.awareness.setLocalStateField('user', { name: 'viewer', after: 'edits' })
      await waitFor(() => seen(w1, v)?.user?.after === 'edits' && seen(w2, v)?.user?.after === 'edits',
        { message: 'the viewer\'s awareness (sent after its edits) at both writers', describe: describeAw([w1, w2]) })
      await sleep(300)

      for (const w of [w1, w2]) {
        assert.equal(w.text().toString(), 'written by w1;live from w2;', `${w.name}: the viewer's text edits must not arrive`)
        assert.equal(w.map().get('evil'), undefined, `${w.name}: the viewer's map edit must not arrive`)
        assert.equal(w.doc.getArray('array').length, 0, `${w.name}: the viewer's array edit must not arrive`)
        assert.ok(!Y.decodeStateVector(Y.encodeStateVector(w.doc)).has(v.doc.clientID), `${w.name} has structs of the viewer`)
      }
      const after = fs.readFileSync(file)
      assert.ok(after.equals(before), `the room file changed after the viewer's edits (${before.length} -> ${after.length} bytes)`)
      assert.ok(!clientsInFile(file).has(v.doc.clientID), 'the room file holds structs or deletes of the viewer')
      const fromFile = docFromWireFile(file)
      assert.equal(fromFile.getText('text').toString(), 'written by w1;live from w2;')

      // the viewer still receives later edits
      w1.text().insert(0, 'after;')
      await waitFor(() => v.text().toString().includes('after;'), { message: 'a later edit at the viewer' })
      // a writer joining now never sees the viewer's edits
      const w3 = await connectClient(srv.wsBase, room, { name: 'ro-w3' })
      clients.push(w3)
      await waitConverged([w1, w2, w3])
      assert.ok(!w3.text().toString().includes('EVIL'), 'a new writer received the viewer\'s edit')
      assert.equal(w3.map().get('evil'), undefined)

      // more refused edits: still one "permission denied"
      v.text().insert(0, 'EVIL2;')
      v.awareness.setLocalStateField('user', { name: 'viewer', after: 'edits2' })
      await waitFor(() => seen(w1, v)?.user?.after === 'edits2', { message: 'second barrier', describe: describeAw([w1]) })
      await sleep(200)
      const denied = warn.lines.filter((l) => l.includes(PERMISSION_DENIED) && l.includes(v.url))
      t.diagnostic(`y-websocket logged: ${JSON.stringify(denied)}`)
      assert.equal(denied.length, 1, `the viewer must get "permission denied" once, got ${denied.length}: ${JSON.stringify(denied)}`)
      assert.ok(v.provider.wsconnected && v.closes.length === 0, `the viewer stays connected: ${v.describe()}`)
    } finally {
      warn.stop()
      await destroyAll(clients)
    }
  }))

  test('the raw auth message: type 2, permission denied (0), a reason, once; the connection stays open', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('roraw')
    const w = await connectClient(srv.wsBase, room, { name: 'roraw-w' })
    let raw
    try {
      w.text().insert(0, 'doc;')
      w.awareness.setLocalStateField('user', { name: 'w' })
      // a second client has w's edit: the server has it
      const w2 = await connectClient(srv.wsBase, room, { name: 'roraw-w2' })
      await waitFor(() => w2.text().toString() === 'doc;', { message: "w's edit at a second client" })
      await w2.destroy()
      raw = await openRaw(`${base(srv, 'view')}/${room}`)
      // it can read: its step 1 is answered with the document (the server greets a
      // client once its first message has shown its protocol)
      await raw.send(msgSyncStep1(Y.encodeStateVector(new Y.Doc())))
      await raw.waitMessage((m) => m.type === 'sync' && m.sub === 'step1', { message: 'the greeting (sync step 1)' })
      const step2 = await raw.waitMessage((m) => m.type === 'sync' && m.sub === 'step2', { message: 'sync step 2 for the viewer' })
      const d = new Y.Doc()
      Y.applyUpdate(d, step2.payload)
      assert.equal(d.getText('text').toString(), 'doc;')

      // it cannot write: a step 2 and two updates, all valid
      const evil = new Y.Doc()
      evil.getText('text').insert(0, 'EVIL')
      const u1 = Y.encodeStateAsUpdate(evil)
      const sv = Y.encodeStateVector(evil)
      evil.getMap('map').set('evil', 1)
      const u2 = Y.encodeStateAsUpdate(evil, sv)
      const sv2 = Y.encodeStateVector(evil)
      evil.getText('text').insert(0, 'MORE')
      const u3 = Y.encodeStateAsUpdate(evil, sv2)
      await raw.send(msgSyncStep2(u1))
      await raw.send(msgUpdate(u2))
      await raw.send(msgUpdate(u3))
      // barrier: a query-awareness after them is answered with w's state
      const awBefore = raw.messages.filter((m) => m.type === 'awareness').length
      await raw.send(msgQueryAwareness())
      await waitFor(() => raw.messages.filter((m) => m.type === 'awareness').length > awBefore,
        { timeout: 5000, message: 'the answer to query-awareness', describe: () => JSON.stringify(raw.messages.map((m) => m.type)) })
      await sleep(200)

      const auths = raw.messages.filter((m) => m.type === 'auth')
      assert.equal(auths.length, 1, `one auth message for three refused writes, got ${auths.length}`)
      const a = auths[0]
      assert.equal(a.raw[0], MSG_AUTH, 'message type 2 (auth)')
      assert.equal(a.raw[1], 0, 'auth type 0 (permission denied)')
      assert.ok(typeof a.reason === 'string' && a.reason.length > 0, `a reason: ${JSON.stringify(a.reason)}`)
      t.diagnostic(`auth message bytes ${Buffer.from(a.raw).toString('hex')}, reason ${JSON.stringify(a.reason)}`)
      assert.equal(raw.close, null, `the read-only connection must stay open: ${JSON.stringify(raw.close)}`)

      // nothing of it arrived
      await sleep(200)
      assert.equal(w.text().toString(), 'doc;')
      assert.equal(w.map().get('evil'), undefined)
      assert.ok(!clientsInFile(roomFile(srv.dataDir, room)).has(evil.clientID), 'the file holds the viewer\'s structs')
    } finally {
      if (raw) await raw.end()
      await destroyAll([w])
    }
  }))

  test('read_only_awareness: relay (default) shows the viewer to the room; drop keeps it invisible', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('roaw')
    const clients = []
    try {
      const w1 = await connectClient(srv.wsBase, room, { name: 'roaw-w1' })
      clients.push(w1)
      w1.awareness.setLocalStateField('user', { name: 'w1' })
      const g = await connectAccessClient(base(srv, 'ghost'), room, { name: 'roaw-ghost' })
      clients.push(g)
      g.awareness.setLocalStateField('user', { name: 'ghost' })
      const v = await connectAccessClient(base(srv, 'view'), room, { name: 'roaw-viewer' })
      clients.push(v)
      v.awareness.setLocalStateField('user', { name: 'viewer' })

      await waitFor(() => seen(w1, v)?.user?.name === 'viewer', { message: 'the relayed viewer at w1', describe: describeAw([w1]) })
      // the ghost sees the others (it receives everything)
      await waitFor(() => seen(g, w1)?.user?.name === 'w1' && seen(g, v)?.user?.name === 'viewer',
        { message: 'the ghost to see w1 and the viewer', describe: describeAw([g]) })
      // the ghost changes its state again, after the viewer's was relayed
      g.awareness.setLocalStateField('cursor', { anchor: 1 })
      await sleep(1000)
      assert.ok(!w1.awareness.getStates().has(g.doc.clientID), `w1 sees the ghost (read_only_awareness drop): ${describeAw([w1])()}`)
      assert.ok(!v.awareness.getStates().has(g.doc.clientID), `the viewer sees the ghost: ${describeAw([v])()}`)

      // a late joiner gets the server's current states: the viewer's, never the ghost's
      const late = await connectClient(srv.wsBase, room, { name: 'roaw-late' })
      clients.push(late)
      await waitFor(() => seen(late, v)?.user?.name === 'viewer' && seen(late, w1)?.user?.name === 'w1',
        { message: 'the late joiner to get the states of w1 and the viewer', describe: describeAw([late]) })
      await sleep(300)
      assert.ok(!late.awareness.getStates().has(g.doc.clientID), `the late joiner got the ghost's state: ${describeAw([late])()}`)

      // the ghost leaving is not announced either; the viewer leaving is
      const vID = v.doc.clientID
      await g.destroy()
      await v.destroy()
      await waitFor(() => !w1.awareness.getStates().has(vID), { timeout: 5000, message: 'the viewer\'s removal at w1', describe: describeAw([w1]) })
      assert.ok(!w1.awareness.getStates().has(g.doc.clientID))
    } finally {
      await destroyAll(clients)
    }
  }))

  test('basic_auth in front of a read-only route: 401 without (or with wrong) credentials, read-only with them', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('ba')
    const url = `${base(srv, 'private')}/${room}`
    const w = await connectClient(srv.wsBase, room, { name: 'ba-w' })
    const clients = [w]
    const warn = captureWarnings()
    try {
      w.text().insert(0, 'private board;')
      w.awareness.setLocalStateField('user', { name: 'w' })
      const basic = (user, pw) => ({ Authorization: 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64') })

      const none = await tryUpgrade(url)
      assert.equal(none.open, false, 'an upgrade without credentials must be refused')
      assert.equal(none.status, 401)
      assert.match(String(none.headers['www-authenticate']), /^Basic/i)
      const wrong = await tryUpgrade(url, { headers: basic('viewer', 'wrong password') })
      assert.equal(wrong.open, false)
      assert.equal(wrong.status, 401)
      const wrongUser = await tryUpgrade(url, { headers: basic('editor', PASSWORD) })
      assert.equal(wrongUser.status, 401)

      // Authorization header on a raw ws client: connected, and read-only
      const ok = await tryUpgrade(url, { headers: basic('viewer', PASSWORD) })
      assert.equal(ok.open, true, `with credentials the upgrade must succeed, got ${ok.status} ${ok.body}`)
      try {
        const evil = new Y.Doc()
        evil.getText('text').insert(0, 'EVIL')
        ok.ws.send(msgSyncStep2(Y.encodeStateAsUpdate(evil)))
        await waitFor(() => ok.messages.some((m) => m.type === 'auth' && m.sub === 'permission-denied'),
          { timeout: 5000, message: 'permission denied on the basic_auth route', describe: () => JSON.stringify(ok.messages.map((m) => m.type)) })
      } finally {
        await closeWs(ok.ws)
      }

      // credentials in the URL, with a WebsocketProvider
      const v = await connectAccessClient(`ws://viewer:${encodeURIComponent(PASSWORD)}@127.0.0.1:${srv.port}/private`, room, { name: 'ba-viewer' })
      clients.push(v)
      await waitFor(() => v.text().toString() === 'private board;', { message: 'the document at the authenticated viewer' })
      v.text().insert(0, 'EVIL;')
      v.awareness.setLocalStateField('user', { name: 'viewer' })
      await waitFor(() => seen(w, v)?.user?.name === 'viewer', { message: 'the viewer\'s awareness (after its edit) at w', describe: describeAw([w]) })
      await sleep(300)
      assert.equal(w.text().toString(), 'private board;', 'the authenticated viewer is still read-only')
      assert.ok(warn.lines.some((l) => l.includes(PERMISSION_DENIED)), 'y-websocket logs permission denied')
    } finally {
      warn.stop()
      await destroyAll(clients)
    }
  }))
})

// ---------------------------------------------------------------------------

describe('origins', { skip: SKIP }, () => {
  let server
  before(async () => {
    server = await startWith({}, (srv) => [
      '@partner path /partner/*',
      ...route('@partner', srv.dataDir, ['origins evil.example *.partner.example']),
      '@dev path /dev/*',
      ...route('@dev', srv.dataDir, ['insecure_skip_origin_check'])
    ])
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)
  const EVIL = 'http://evil.example'

  test('default: a foreign Origin gets 403 before the upgrade; same origin and no Origin connect', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('orig')
    const url = srv.roomUrl(room)
    for (const origin of [EVIL, `http://127.0.0.1.evil.example`, `http://127.0.0.1:${srv.port + 1 === 65536 ? 1 : srv.port + 1}`]) {
      const r = await tryUpgrade(url, { origin })
      assert.equal(r.open, false, `Origin ${origin} must be refused`)
      assert.equal(r.status, 403, `Origin ${origin}: status ${r.status} ${r.body}`)
      t.diagnostic(`Origin ${origin}: ${r.status} ${JSON.stringify(r.body.trim())}`)
    }
    assert.ok(noFile(srv, room), 'a refused upgrade must not create the room')

    const same = await tryUpgrade(url, { origin: `http://127.0.0.1:${srv.port}` })
    assert.equal(same.open, true, `same origin: ${same.status} ${same.body}`)
    await closeWs(same.ws)
    const noOrigin = await tryUpgrade(url)
    assert.equal(noOrigin.open, true, `no Origin: ${noOrigin.status} ${noOrigin.body}`)
    await closeWs(noOrigin.ws)

    // y-websocket in a page of another site never connects; in a page of this one it does
    const good = await connectAccessClient(srv.wsBase, room, { name: 'orig-same', origin: `http://127.0.0.1:${srv.port}` })
    const bad = new AccessClient(srv.wsBase, room, { name: 'orig-evil', origin: EVIL })
    try {
      await waitFor(() => bad.errors.length >= 2, { timeout: 8000, message: 'the foreign page\'s provider to fail twice', describe: () => bad.describe() })
      assert.equal(bad.synced, false)
      assert.ok(!bad.statuses.includes('connected'), `the foreign page's provider connected: ${bad.describe()}`)
    } finally {
      await destroyAll([good, bad])
    }
  }))

  test('origins <patterns> admits those sites; others still get 403', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('origp')
    const url = `ws://127.0.0.1:${srv.port}/partner/${room}`
    for (const origin of [EVIL, 'https://evil.example', 'http://app.partner.example', `http://127.0.0.1:${srv.port}`]) {
      const r = await tryUpgrade(url, { origin })
      assert.equal(r.open, true, `Origin ${origin} must be admitted on the origins route: ${r.status} ${r.body}`)
      await closeWs(r.ws)
    }
    for (const origin of ['http://other.example', 'http://sub.evil.example', 'http://partner.example']) {
      const r = await tryUpgrade(url, { origin })
      assert.equal(r.status, 403, `Origin ${origin} must be refused on the origins route: ${r.open ? 'it connected' : r.status}`)
    }
    // the pattern of one route does not open another
    const r = await tryUpgrade(srv.roomUrl(room), { origin: EVIL })
    assert.equal(r.status, 403)
    // a y-websocket client from the admitted site syncs
    const c = await connectAccessClient(`ws://127.0.0.1:${srv.port}/partner`, room, { name: 'origp-evil', origin: EVIL })
    await destroyAll([c])
  }))

  test('insecure_skip_origin_check accepts any Origin and logs a warning at start', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('origd')
    for (const origin of [EVIL, 'null', 'http://anything.invalid']) {
      const r = await tryUpgrade(`ws://127.0.0.1:${srv.port}/dev/${room}`, { origin })
      assert.equal(r.open, true, `Origin ${origin} with insecure_skip_origin_check: ${r.status} ${r.body}`)
      await closeWs(r.ws)
    }
    const warning = srv.log().split('\n').find((l) => l.includes('insecure_skip_origin_check'))
    assert.ok(warning, 'the server log has no insecure_skip_origin_check warning')
    assert.match(warning, /"level":"warn"/i, `the line is a warning: ${warning}`)
    t.diagnostic(warning)
  }))
})

// ---------------------------------------------------------------------------

describe('jwt room tokens (HS256 on /rooms, ES256 on /es)', { skip: SKIP }, () => {
  const SECRET = hsSecret()
  const OTHER_SECRET = hsSecret()
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const otherEc = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = ec.publicKey.export({ type: 'spki', format: 'pem' })
  let server
  before(async () => {
    server = await startWith({ wiredbDirectives: ['jwt {', `\tkey ${SECRET}`, '}'] }, (srv) => {
      const pemFile = path.join(srv.tmpDir, 'jwt-es256.pem')
      fs.writeFileSync(pemFile, pem)
      return [
        '@es path /es/*',
        ...route('@es', srv.dataDir, ['jwt {', `\tkey ${pemFile}`, '\talg ES256', '}']),
        '@jview path /jview/*',
        ...route('@jview', srv.dataDir, ['read_only', 'jwt {', `\tkey ${SECRET}`, '}'])
      ]
    })
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)
  const hs = (claims, o = {}) => signJwt(claims, { alg: 'HS256', key: SECRET, ...o })
  const es = (claims, o = {}) => signJwt(claims, { alg: 'ES256', key: ec.privateKey, ...o })
  const claims = (rooms, scope, extra = {}) => ({ exp: nowSec() + 600, rooms, ...(scope === undefined ? {} : { scope }), ...extra })
  const esBase = (srv) => `ws://127.0.0.1:${srv.port}/es`
  const withToken = (url, tok) => `${url}?token=${encodeURIComponent(tok)}`

  test('a write token works as ?token= and as the Sec-WebSocket-Protocol entry (echoed in the handshake)', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('jw')
    const tok = hs(claims([room], 'write'))
    const clients = []
    try {
      const a = await connectAccessClient(srv.wsBase, room, { name: 'jw-query', params: { token: tok } })
      clients.push(a)
      const entry = 'wiredb.token.' + tok
      const b = await connectAccessClient(srv.wsBase, room, { name: 'jw-protocol', protocols: [entry] })
      clients.push(b)
      assert.equal(b.provider.ws.protocol, entry, 'the handshake must echo the token entry')
      a.text().insert(0, 'from a;')
      b.map().set('b', 'from b')
      await waitConverged([a, b])
      assert.equal(b.text().toString(), 'from a;')
      assert.equal(a.map().get('b'), 'from b')

      // a raw client offering other protocols too gets exactly the token entry back
      const r = await tryUpgrade(srv.roomUrl(room), { protocols: ['chat', entry] })
      assert.equal(r.open, true, `protocol entry: ${r.status} ${r.body}`)
      assert.equal(r.protocol, entry)
      await closeWs(r.ws)
      // with ?token= nothing is echoed (none was offered)
      const q = await tryUpgrade(withToken(srv.roomUrl(room), tok))
      assert.equal(q.open, true)
      assert.equal(q.protocol, '')
      await closeWs(q.ws)

      // the writes are stored
      await destroyAll(clients.splice(0))
      const fresh = await connectAccessClient(srv.wsBase, room, { name: 'jw-fresh', params: { token: tok } })
      clients.push(fresh)
      await waitFor(() => fresh.text().toString() === 'from a;' && fresh.map().get('b') === 'from b', { message: 'the stored document' })
      const fileDoc = docFromWireFile(roomFile(srv.dataDir, room))
      assert.equal(fileDoc.getText('text').toString(), 'from a;')
    } finally {
      await destroyAll(clients)
    }
  }))

  test('a read-scope token (and a token without scope) makes the connection read-only', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('jr')
    const warn = captureWarnings()
    const clients = []
    try {
      const w = await connectAccessClient(srv.wsBase, room, { name: 'jr-w', params: { token: hs(claims([room], 'write')) } })
      clients.push(w)
      w.text().insert(0, 'doc;')
      w.awareness.setLocalStateField('user', { name: 'w' })
      let want = 'doc;'
      for (const [label, tok] of [['scope read', hs(claims([room], 'read'))], ['no scope', hs(claims([room], undefined))]]) {
        const r = await connectAccessClient(srv.wsBase, room, { name: `jr-${label}`, params: { token: tok } })
        clients.push(r)
        await waitFor(() => r.text().toString() === w.text().toString(), { message: `${label}: the document at the reader` })
        r.text().insert(0, 'EVIL;')
        r.map().set('evil', label)
        r.awareness.setLocalStateField('user', { name: label })
        await waitFor(() => seen(w, r)?.user?.name === label, { message: `${label}: the reader's awareness (after its edits) at w`, describe: describeAw([w]) })
        await sleep(300)
        assert.equal(w.text().toString(), want, `${label}: the reader's edit must not be applied`)
        assert.equal(w.map().get('evil'), undefined, `${label}: the reader's map edit must not be applied`)
        assert.ok(warn.lines.some((l) => l.includes(PERMISSION_DENIED) && l.includes(r.url.split('?')[0])), `${label}: permission denied logged`)
        // it still reads live edits
        w.text().insert(w.text().length, label + ';')
        want += label + ';'
        await waitFor(() => r.text().toString().endsWith(label + ';'), { message: `${label}: a live edit at the reader` })
      }
      assert.ok(!clientsInFile(roomFile(srv.dataDir, room)).has(clients[1].doc.clientID))
      assert.ok(!clientsInFile(roomFile(srv.dataDir, room)).has(clients[2].doc.clientID))
    } finally {
      warn.stop()
      await destroyAll(clients)
    }
  }))

  test('refused tokens: 401/403 with the reason in the body, before the upgrade, no room created', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('jx')
    const url = srv.roomUrl(room)
    const good = hs(claims([room], 'write'))
    const goodRead = hs(claims([room], 'read'))
    const payloadOf = (tok) => JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString())
    const cases = [
      // upgraded (a Hocuspocus provider sends its token per document, later), then closed
      // with 1008 once the client's first message shows it is a y-websocket client
      ['missing token', url, {}, 1008, /missing token/],
      ['empty ?token=', `${url}?token=`, {}, 1008, /missing token/],
      ['expired (exp 2 min ago, past the 30 s skew)', withToken(url, hs(claims([room], 'write', { exp: nowSec() - 120 }))), {}, 401, /^token expired/],
      ['expired, as a protocol entry', url, { protocols: ['wiredb.token.' + hs(claims([room], 'write', { exp: nowSec() - 120 }))] }, 401, /^token expired/],
      ['no exp', withToken(url, hs({ rooms: [room], scope: 'write' })), {}, 401, /exp/],
      ['nbf 5 min ahead', withToken(url, hs(claims([room], 'write', { nbf: nowSec() + 300 }))), {}, 401, /invalid token/],
      ['tampered: scope read -> write, signature kept', withToken(url, withPayload(goodRead, { ...payloadOf(goodRead), scope: 'write' })), {}, 401, /invalid token/],
      ['tampered: exp extended, signature kept', withToken(url, withPayload(good, { ...payloadOf(good), exp: nowSec() + 86400 })), {}, 401, /invalid token/],
      ['signed with another secret', withToken(url, signJwt(claims([room], 'write'), { key: OTHER_SECRET })), {}, 401, /invalid token/],
      ['alg none', withToken(url, signJwt(claims([room], 'write'), { alg: 'none' })), {}, 401, /invalid token/],
      ['alg none, as a protocol entry', url, { protocols: ['wiredb.token.' + signJwt(claims([room], 'write'), { alg: 'none' })] }, 401, /invalid token/],
      ['ES256 token on the HS256 route', withToken(url, es(claims([room], 'write'))), {}, 401, /invalid token/],
      ['garbage', withToken(url, 'not.a.jwt'), {}, 401, /invalid token/],
      ['another room', withToken(url, hs(claims(['some-other-room', `${room}x`], 'write'))), {}, 403, new RegExp(`does not grant room ${room}`)],
      ['empty rooms', withToken(url, hs(claims([], 'write'))), {}, 403, /does not grant room/],
      ['unknown scope', withToken(url, hs(claims([room], 'admin'))), {}, 403, /scope/],
      ['a valid token from a foreign Origin', withToken(url, good), { origin: 'http://evil.example' }, 403, /not authorized/],
      // the ES256 route
      ['ES256 route: missing token', `${esBase(srv)}/${room}`, {}, 1008, /missing token/],
      ['ES256 route: signed with another key', withToken(`${esBase(srv)}/${room}`, es(claims([room], 'write'), { key: otherEc.privateKey })), {}, 401, /invalid token/],
      ['ES256 route: HS256 with the PEM public key as secret (alg confusion)', withToken(`${esBase(srv)}/${room}`, hs(claims([room], 'write'), { key: pem })), {}, 401, /invalid token/],
      ['ES256 route: HS256 token', withToken(`${esBase(srv)}/${room}`, hs(claims([room], 'write'))), {}, 401, /invalid token/],
      ['ES256 route: DER-encoded signature (JWS wants R||S)', withToken(`${esBase(srv)}/${room}`, es(claims([room], 'write'), { dsaEncoding: 'der' })), {}, 401, /invalid token/],
      ['ES256 route: tampered', withToken(`${esBase(srv)}/${room}`, withPayload(es(claims([room], 'read')), claims([room], 'write'))), {}, 401, /invalid token/],
      ['ES256 route: expired', withToken(`${esBase(srv)}/${room}`, es(claims([room], 'write', { exp: nowSec() - 120 }))), {}, 401, /^token expired/],
      ['ES256 route: another room', withToken(`${esBase(srv)}/${room}`, es(claims(['elsewhere'], 'write'))), {}, 403, /does not grant room/]
    ]
    const failures = []
    for (const [label, u, o, status, body] of cases) {
      const r = await tryUpgrade(u, o)
      t.diagnostic(`${label}: ${r.open ? 'OPEN' : `${r.status} ${JSON.stringify(r.body.trim())}`}`)
      if (r.open && status === 1008) {
        const c = await closeAfterFirstMessage(r.ws)
        t.diagnostic(`${label}: then closed ${JSON.stringify(c)}`)
        if (!c || c.code !== 1008 || !body.test(c.reason)) failures.push(`${label}: closed ${JSON.stringify(c)}, want 1008 matching ${body}`)
        continue
      }
      if (r.open) { await closeWs(r.ws); failures.push(`${label}: the upgrade succeeded`); continue }
      if (r.status !== status) failures.push(`${label}: status ${r.status}, want ${status} (body ${JSON.stringify(r.body)})`)
      else if (!body.test(r.body.trim())) failures.push(`${label}: body ${JSON.stringify(r.body)} does not match ${body}`)
    }
    assert.deepEqual(failures, [], failures.join('\n'))
    assert.ok(noFile(srv, room), 'refused upgrades created the room file')
  }))

  test('a write token on a read_only route is still read-only', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('jrov')
    const tok = hs(claims([room], 'write'))
    const clients = []
    const warn = captureWarnings()
    try {
      const w = await connectAccessClient(srv.wsBase, room, { name: 'jrov-w', params: { token: tok } })
      clients.push(w)
      w.text().insert(0, 'doc;')
      const v = await connectAccessClient(`ws://127.0.0.1:${srv.port}/jview`, room, { name: 'jrov-v', params: { token: tok } })
      clients.push(v)
      await waitFor(() => v.text().toString() === 'doc;', { message: 'the document at the viewer' })
      v.text().insert(0, 'EVIL;')
      v.awareness.setLocalStateField('user', { name: 'v' })
      await waitFor(() => seen(w, v)?.user?.name === 'v', { message: 'the viewer\'s awareness at w', describe: describeAw([w]) })
      await sleep(300)
      assert.equal(w.text().toString(), 'doc;', 'a write token must not make a read_only route writable')
      assert.ok(warn.lines.some((l) => l.includes(PERMISSION_DENIED) && l.includes('/jview/')), 'permission denied logged')
      // and the route still wants a token: a y-websocket client without one is closed
      const r = await tryUpgrade(`ws://127.0.0.1:${srv.port}/jview/${room}`)
      assert.ok(r.open, 'a request without a token is upgraded (Hocuspocus sends tokens later)')
      const c = await closeAfterFirstMessage(r.ws)
      assert.equal(c?.code, 1008)
      assert.match(c.reason, /missing token/)
    } finally {
      warn.stop()
      await destroyAll(clients)
    }
  }))

  test('token expiry: 30 s of clock skew are allowed', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('jskew')
    const r = await tryUpgrade(withToken(srv.roomUrl(room), hs(claims([room], 'write', { exp: nowSec() - 5 }))))
    assert.equal(r.open, true, `a token expired 5 s ago is within the skew: ${r.status} ${r.body}`)
    await closeWs(r.ws)
  }))

  test('room globs: * stays in one segment, /** spans segments, ** is every room', { timeout: 30000 }, run(async (t, srv) => {
    const team = freshRoom('team')
    const check = async (rooms, key, want) => {
      const r = await tryUpgrade(withToken(`${srv.wsBase}/${key}`, hs(claims(rooms, 'write'))))
      if (r.open) await closeWs(r.ws)
      const got = r.open ? 'open' : r.status
      assert.equal(got, want, `rooms ${JSON.stringify(rooms)}, room ${key}: got ${got}${r.open ? '' : ' ' + r.body}`)
    }
    await check([`${team}/*`], `${team}/a`, 'open')
    await check([`${team}/*`], `${team}/a/b`, 403)
    await check([`${team}/*`], `${team}x/a`, 403)
    await check([`${team}/**`], `${team}/a/b/c`, 'open')
    await check([`${team}/**`], `${team}/a`, 'open')
    await check([`${team}/**`], `${team}-other/a`, 403)
    await check([`${team}/?`], `${team}/z`, 'open')
    await check([`${team}/?`], `${team}/zz`, 403)
    await check(['**'], `${team}/any/thing`, 'open')
    await check(['nope', `${team}/a`], `${team}/a`, 'open')
  }))

  test('ES256: a token signed with the P-256 key (PEM file) writes through /es; /rooms (HS256) peers see it', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('jes')
    const clients = []
    try {
      const e = await connectAccessClient(esBase(srv), room, { name: 'jes-es', params: { token: es(claims([room], 'write')) } })
      clients.push(e)
      const entry = 'wiredb.token.' + es(claims([room], 'write'))
      const e2 = await connectAccessClient(esBase(srv), room, { name: 'jes-es-proto', protocols: [entry] })
      clients.push(e2)
      assert.equal(e2.provider.ws.protocol, entry)
      const h = await connectAccessClient(srv.wsBase, room, { name: 'jes-hs', params: { token: hs(claims([room], 'write')) } })
      clients.push(h)
      e.text().insert(0, 'es256;')
      h.map().set('hs', 1)
      await waitConverged([e, e2, h])
      assert.equal(h.text().toString(), 'es256;')
      assert.equal(e.map().get('hs'), 1)
      // read scope on the ES256 route
      const warn = captureWarnings()
      try {
        const r = await connectAccessClient(esBase(srv), room, { name: 'jes-read', params: { token: es(claims([room], 'read')) } })
        clients.push(r)
        r.text().insert(0, 'EVIL;')
        r.awareness.setLocalStateField('user', { name: 'r' })
        await waitFor(() => seen(h, r)?.user?.name === 'r', { message: 'the reader\'s awareness at h', describe: describeAw([h]) })
        await sleep(300)
        assert.equal(h.text().toString(), 'es256;', 'an ES256 read token must not write')
        assert.ok(warn.lines.some((l) => l.includes(PERMISSION_DENIED)), 'permission denied logged')
      } finally {
        warn.stop()
      }
    } finally {
      await destroyAll(clients)
    }
  }))
})
