// The HTTP API of a `wiredb` route (issue 17, `http_api`): backends POST Yjs updates to a
// room and GET it as JSON, as one update, or as the diff against a state vector; ETags,
// tokens on a `jwt` route, read_only routes, invalid bodies, awareness, CORS.
// Real Caddy, real y-websocket clients; updates built and read with the `yjs` package,
// room files read with wirefile.js. Every wait is bounded.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { TestServer, withServer, caddyOnly } from '../lib/server.js'
import {
  Y, connectClient, connectClients, destroyAll, freshRoom, sleep, waitFor, waitConverged, stable
} from '../lib/clients.js'
import { roomFile, docFromWireFile } from '../lib/wirefile.js'
import { signJwt, nowSec, hsSecret, captureWarnings } from '../lib/access.js'
import {
  httpBuffer, roomHttpUrl, postUpdate, getUpdate, getJson, getAwareness, brief, docFromUpdate, copyDoc, Backend,
  decodeSv, svObject, docSv, renderedRoots, docDiff, median, quantile, fmt
} from '../lib/httpapi.js'

const SKIP = caddyOnly('the HTTP API is a wiredb feature')
const ROOTS = { text: 'text', map: 'map', array: 'array' }
const ALLOWED_ORIGIN = 'http://app.example.com'
const FOREIGN_ORIGIN = 'http://evil.example.net'

/** starts a TestServer whose site directives are built from its own data dir */
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

/** asserts an API error: the status and a JSON {"error": "<reason>"} body */
function assertApiError (res, status, what) {
  assert.equal(res.status, status, `${what}: want ${status}, got ${brief(res)}`)
  assert.match(String(res.headers['content-type']), /application\/json/, `${what}: content-type of the error`)
  assert.ok(res.json && typeof res.json.error === 'string' && res.json.error.length > 0,
    `${what}: the body must be JSON {"error": "<reason>"}, got ${JSON.stringify(res.text)}`)
}

/** asserts a 200 POST answer {"room": room, "state_vector": "<base64>"} and returns the decoded state vector */
function assertPosted (res, room, what = 'POST') {
  assert.equal(res.status, 200, `${what}: ${brief(res)}`)
  assert.match(String(res.headers['content-type']), /application\/json/, `${what}: content-type`)
  assert.equal(res.json?.room, room, `${what}: room in ${res.text}`)
  assert.equal(typeof res.json.state_vector, 'string', `${what}: state_vector in ${res.text}`)
  return svObject(decodeSv(res.json.state_vector))
}

/** asserts a GET answer holding one Yjs update and returns the doc it builds */
function assertUpdateAnswer (res, what) {
  assert.equal(res.status, 200, `${what}: ${brief(res)}`)
  assert.match(String(res.headers['content-type']), /application\/octet-stream/, `${what}: content-type`)
  return docFromUpdate(res.body)
}

function assertRendered (rendered, doc, what) {
  assert.ok(rendered && typeof rendered === 'object', `${what}: not a JSON object`)
  const want = renderedRoots(doc, ROOTS)
  for (const [name, r] of Object.entries(want)) {
    assert.ok(rendered[name], `${what}: no root ${name} in ${JSON.stringify(rendered).slice(0, 500)}`)
    assert.equal(rendered[name].type, r.type, `${what}: type of root ${name}`)
    assert.equal(stable(rendered[name].value), stable(r.value), `${what}: value of root ${name}`)
  }
  assert.deepEqual(Object.keys(rendered).sort(), Object.keys(want).sort(), `${what}: the roots`)
}

/** Text with formatting and deletions, a nested Map, an Array */
function sampleEdits (c, tag) {
  c.text().insert(c.text().length, `${tag}: some text to be formatted. `)
  c.text().format(0, 4, { bold: true })
  c.text().delete(1, 2)
  c.map().set(tag, { nested: [1, 'two', { three: 3 }], flag: true, none: null })
  c.map().set(`${tag}-gone`, 1)
  c.map().delete(`${tag}-gone`)
  c.array().push([tag, 42, { k: 'v' }])
  c.array().insert(0, [true])
}

const fileOf = (srv, room) => roomFile(srv.dataDir, room)

// ---------------------------------------------------------------------------

describe('HTTP API: updates in and out, ETags, errors, awareness, CORS', { skip: SKIP }, () => {
  let server
  before(async () => {
    server = await startWith({ wiredbDirectives: ['http_api'] }, (srv) => [
      '@view path /view/*',
      ...route('@view', srv.dataDir, ['http_api', 'read_only']),
      '@small path /small/*',
      ...route('@small', srv.dataDir, ['http_api', 'max_message_size 1KiB']),
      '@cors path /cors/*',
      ...route('@cors', srv.dataDir, ['http_api', 'origins app.example.com']),
      '@plain path /plain/*',
      ...route('@plain', srv.dataDir, []),
      // the next handler: what a route without http_api passes plain requests to
      'respond "next handler" 299'
    ])
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)

  test('a backend POST reaches connected clients and a late joiner, is in the file when answered, and survives a restart', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('post')
    const created = freshRoom('post-new')
    const clients = []
    let backend, createdRef
    try {
      clients.push(...await connectClients(srv.wsBase, room, 2, { namePrefix: 'post-' }))
      const [a, b] = clients
      a.text().insert(0, 'client text;')
      a.map().set('client', 'a')
      await waitConverged([a, b])

      // the backend reads the room, edits its copy and POSTs what it changed
      backend = new Backend()
      const g0 = await getUpdate(srv, room)
      assertUpdateAnswer(g0, 'GET before the POST')
      backend.load(g0.body)
      assert.equal(backend.doc.getText('text').toString(), 'client text;')
      const u1 = backend.edit((d) => {
        d.getText('text').insert(0, 'backend;')
        d.getMap('map').set('from', { backend: true, n: 1 })
        d.getArray('array').push(['b1'])
      })
      const r1 = await postUpdate(srv, room, u1)
      const sv1 = assertPosted(r1, room, 'first POST')
      // answered once stored: the room file already holds it
      const inFile = docFromWireFile(fileOf(srv, room))
      assert.equal(inFile.getText('text').toString(), 'backend;client text;', 'the room file holds the POSTed update when the POST is answered')
      assert.deepEqual(sv1, docSv(backend.doc), 'state_vector of the answer = the state vector of the room (the backend has all of it)')

      await waitFor(() => clients.every((c) => c.text().toString() === 'backend;client text;' && c.map().get('from')?.backend === true && c.array().length === 1),
        { message: 'both clients to receive the POSTed update', describe: () => clients.map((c) => `${c.name}: ${JSON.stringify(c.doc.toJSON())}`).join('\n') })
      assert.equal(docDiff(backend.doc, a.doc, ROOTS), null)

      // a deletion of the clients' content, POSTed
      const u2 = backend.edit((d) => {
        d.getText('text').delete(d.getText('text').length - 'text;'.length, 'text;'.length)
        d.getMap('map').delete('client')
      })
      assertPosted(await postUpdate(srv, room, u2), room, 'second POST (deletions)')
      await waitFor(() => clients.every((c) => c.text().toString() === 'backend;client ' && c.map().get('client') === undefined),
        { message: 'both clients to receive the POSTed deletion', describe: () => clients.map((c) => `${c.name}: ${JSON.stringify(c.doc.toJSON())}`).join('\n') })

      // a late joiner gets everything
      const late = await connectClient(srv.wsBase, room, { name: 'post-late' })
      clients.push(late)
      await waitConverged(clients)
      assert.equal(docDiff(backend.doc, late.doc, ROOTS), null, 'the late joiner has what the backend has')

      // a POST creates a room that does not exist
      assertApiError(await getUpdate(srv, created), 404, 'GET of a room nobody created yet')
      const nb = new Backend()
      const u3 = nb.edit((d) => { d.getText('text').insert(0, 'created by POST'); d.getMap('map').set('k', [1, 2]) })
      assertPosted(await postUpdate(srv, created, u3), created, 'POST to a new room')
      assert.ok(fs.existsSync(fileOf(srv, created)), 'the POST created the room file')
      createdRef = copyDoc(nb.doc)
      const c = await connectClient(srv.wsBase, created, { name: 'post-created' })
      clients.push(c)
      await waitFor(() => c.text().toString() === 'created by POST', { message: 'a client of the created room to see the POST' })
    } finally {
      await destroyAll(clients.splice(0))
    }

    await srv.restart()
    try {
      for (const [r, ref] of [[room, backend.doc], [created, createdRef]]) {
        // read before any client opened the room again (from its file)
        const g = assertUpdateAnswer(await getUpdate(srv, r), `${r}: GET after the restart`)
        assert.equal(docDiff(ref, g, ROOTS), null, `${r}: GET after the restart`)
        const c = await connectClient(srv.wsBase, r, { name: `post-after-restart-${r.slice(0, 8)}` })
        clients.push(c)
        assert.equal(docDiff(ref, c.doc, ROOTS), null, `${r}: a client after the restart has the POSTed content`)
      }
    } finally {
      await destroyAll(clients)
    }
  }))

  test('what a POST answered 200 survives kill -9', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('post9')
    const b = new Backend()
    for (let i = 0; i < 10; i++) assertPosted(await postUpdate(srv, room, b.edit((d) => d.getArray('array').push([i]))), room)
    await srv.restart({ kill9: true })
    const g = assertUpdateAnswer(await getUpdate(srv, room), 'GET after kill -9')
    assert.equal(docDiff(b.doc, g, ROOTS), null, 'every answered POST is there after kill -9')
  }))

  test('concurrent POSTs from 20 backends and WebSocket edits from 4 clients converge; a key with a slash', { timeout: 60000 }, run(async (t, srv) => {
    const room = `team/${freshRoom('conc')}`
    const clients = await connectClients(srv.wsBase, room, 4, { namePrefix: 'conc-' })
    try {
      const backends = Array.from({ length: 20 }, () => new Backend())
      const editing = (async () => {
        for (let i = 0; i < 30; i++) {
          const c = clients[i % clients.length]
          c.text().insert(Math.min(i, c.text().length), `w${i}`)
          c.map().set(`ws-${i}`, i)
          await sleep(2)
        }
      })()
      // every backend POSTs three updates, all backends at once
      const posted = await Promise.all(backends.map(async (b, k) => {
        const out = []
        for (let j = 0; j < 3; j++) {
          out.push(await postUpdate(srv, room, b.edit((d) => { d.getArray('array').push([`b${k}.${j}`]); d.getMap('map').set(`post-${k}-${j}`, true) })))
        }
        return out
      }))
      await editing
      for (const r of posted.flat()) assertPosted(r, room, 'a concurrent POST')
      await waitConverged(clients, { timeout: 15000 })
      const a = clients[0]
      assert.equal(a.array().length, 60, 'all 60 POSTed array entries')
      assert.equal(a.map().size, 90, 'all 60 POSTed and 30 WebSocket map entries')
      for (const b of backends) {
        for (const [client, clock] of Object.entries(docSv(b.doc))) {
          assert.equal(docSv(a.doc)[client], clock, `backend ${client}'s updates are all at the clients`)
        }
      }
      const g = assertUpdateAnswer(await getUpdate(srv, room), 'GET after the concurrent writes')
      assert.equal(docDiff(a.doc, g, ROOTS), null, 'GET equals the clients\' document')
      // the key with a slash is one room, whose file name escapes the slash
      assert.ok(fs.readdirSync(srv.dataDir).includes(`team%2F${room.slice('team/'.length)}.y`), `file of ${room}`)
    } finally {
      await destroyAll(clients)
    }
  }))

  test('GET as JSON and GET as an update round-trip through Yjs', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('get')
    const clients = await connectClients(srv.wsBase, room, 2, { namePrefix: 'get-' })
    try {
      sampleEdits(clients[0], 'a')
      sampleEdits(clients[1], 'b')
      await waitConverged(clients)
      const [a] = clients

      const j = await getJson(srv, room)
      assert.equal(j.status, 200, `GET as JSON: ${brief(j)}`)
      assert.match(String(j.headers['content-type']), /application\/json/)
      t.diagnostic(`JSON: ${j.text.slice(0, 400)}`)
      assertRendered(j.json, a.doc, 'GET as JSON')

      const u = await getUpdate(srv, room)
      const d = assertUpdateAnswer(u, 'GET as an update')
      t.diagnostic(`update: ${u.body.length} bytes, ETag ${u.headers.etag}`)
      const diff = docDiff(a.doc, d, ROOTS)
      assert.equal(diff, null, `the GET update differs from the clients' doc: ${diff}`)

      // no Accept at all: the update too
      const plain = await httpBuffer(roomHttpUrl(srv, room))
      assert.equal(docDiff(a.doc, assertUpdateAnswer(plain, 'GET without Accept'), ROOTS), null)
      assert.ok(plain.body.equals(u.body), 'GET without Accept answers the same bytes as Accept: application/octet-stream')

      // the update, POSTed to another room, makes a copy of the document there
      const copy = freshRoom('get-copy')
      assertPosted(await postUpdate(srv, copy, u.body), copy, 'POST of the GET update to another room')
      const c = await connectClient(srv.wsBase, copy, { name: 'get-copy' })
      clients.push(c)
      assert.equal(docDiff(a.doc, c.doc, ROOTS), null, 'a client of the copy has the same document')
    } finally {
      await destroyAll(clients)
    }
  }))

  test('?sv= answers only what that state vector lacks; it applies cleanly to the older doc', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('sv')
    const clients = await connectClients(srv.wsBase, room, 2, { namePrefix: 'sv-' })
    try {
      const [a, b] = clients
      for (let i = 0; i < 10; i++) sampleEdits(a, `old${i}`)
      await waitConverged(clients)
      const old = copyDoc(b.doc)
      const sv0 = Y.encodeStateVector(old)

      // newer edits from both, deletions of old content among them
      b.text().insert(5, 'NEW from b;')
      b.text().delete(20, 30)
      a.map().set('old3', 'replaced')
      a.array().delete(0, 3)
      b.array().push(['new'])
      await waitConverged(clients)

      const full = await getUpdate(srv, room)
      assertUpdateAnswer(full, 'GET the whole document')
      for (const enc of ['base64url', 'base64']) {
        const sv = Buffer.from(sv0).toString(enc)
        const r = await getUpdate(srv, room, { query: { sv } })
        assert.equal(r.status, 200, `?sv= (${enc}): ${brief(r)}`)
        assert.match(String(r.headers['content-type']), /application\/octet-stream/)
        const d = copyDoc(old)
        Y.applyUpdate(d, new Uint8Array(r.body))
        assert.equal(d.store.pendingStructs, null, `?sv= (${enc}): the diff leaves structs pending on the older doc`)
        assert.equal(d.store.pendingDs, null, `?sv= (${enc}): the diff leaves deletes pending`)
        const diff = docDiff(a.doc, d, ROOTS)
        assert.equal(diff, null, `?sv= (${enc}): older doc + diff differs from the clients' doc: ${diff}`)
        assert.ok(r.body.length < full.body.length, `?sv= (${enc}): the diff (${r.body.length} bytes) must be smaller than the whole document (${full.body.length})`)
        t.diagnostic(`?sv= (${enc}): ${r.body.length} bytes; whole document ${full.body.length} bytes`)
      }
      // the current state vector: nothing new
      const cur = await getUpdate(srv, room, { query: { sv: Buffer.from(Y.encodeStateVector(a.doc)).toString('base64url') } })
      assert.equal(cur.status, 200, brief(cur))
      const same = copyDoc(a.doc)
      Y.applyUpdate(same, new Uint8Array(cur.body))
      assert.equal(docDiff(a.doc, same, ROOTS), null, 'the diff against the current state changes nothing')
      // the empty state vector: the whole document
      const empty = await getUpdate(srv, room, { query: { sv: Buffer.from(Y.encodeStateVector(new Y.Doc())).toString('base64url') } })
      assert.equal(docDiff(a.doc, assertUpdateAnswer(empty, '?sv=<empty state vector>'), ROOTS), null)
    } finally {
      await destroyAll(clients)
    }
  }))

  test('ETag: If-None-Match answers 304; after a change the ETag differs', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('etag')
    const c = await connectClient(srv.wsBase, room, { name: 'etag' })
    try {
      c.text().insert(0, 'version 1')
      const b = new Backend()
      await waitFor(async () => (await getJson(srv, room)).json?.text?.value === 'version 1', { timeout: 5000, message: 'the server to have version 1' })
      const g1 = await getUpdate(srv, room)
      assert.equal(g1.status, 200, brief(g1))
      const etag = g1.headers.etag
      t.diagnostic(`ETag: ${etag}`)
      assert.match(String(etag), /^"[0-9a-fA-F]+"$/, 'ETag: "<hex>"')
      const g2 = await getUpdate(srv, room)
      assert.equal(g2.headers.etag, etag, 'the same state: the same ETag')

      const nm = await getUpdate(srv, room, { headers: { 'If-None-Match': etag } })
      assert.equal(nm.status, 304, `If-None-Match with the current ETag: ${brief(nm)}`)
      assert.equal(nm.body.length, 0, '304 has no body')
      const other = await getUpdate(srv, room, { headers: { 'If-None-Match': '"0123abcd"' } })
      assert.equal(other.status, 200, `If-None-Match with another ETag: ${brief(other)}`)

      // a change over the WebSocket
      c.text().insert(c.text().length, ', version 2')
      await waitFor(async () => (await getJson(srv, room)).json?.text?.value === 'version 1, version 2', { timeout: 5000, message: 'the server to have version 2' })
      const g3 = await getUpdate(srv, room, { headers: { 'If-None-Match': etag } })
      assert.equal(g3.status, 200, `If-None-Match with the old ETag after a change: ${brief(g3)}`)
      assert.notEqual(g3.headers.etag, etag, 'after a change the ETag differs')
      assert.equal(docFromUpdate(g3.body).getText('text').toString(), 'version 1, version 2')

      // a change by POST
      b.load(g3.body)
      assertPosted(await postUpdate(srv, room, b.edit((d) => d.getMap('map').set('v', 3))), room)
      const g4 = await getUpdate(srv, room, { headers: { 'If-None-Match': g3.headers.etag } })
      assert.equal(g4.status, 200, `after a POST: ${brief(g4)}`)
      assert.ok(g4.headers.etag && g4.headers.etag !== g3.headers.etag && g4.headers.etag !== etag, `after a POST the ETag differs: ${etag} ${g3.headers.etag} ${g4.headers.etag}`)
      const nm4 = await getUpdate(srv, room, { headers: { 'If-None-Match': g4.headers.etag } })
      assert.equal(nm4.status, 304, brief(nm4))
    } finally {
      await c.destroy()
    }
  }))

  test('invalid bodies are refused with 400 and a reason, the room and its file unchanged; 415, 404, 405, 413', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('bad')
    const c = await connectClient(srv.wsBase, room, { name: 'bad' })
    try {
      sampleEdits(c, 'good')
      await waitFor(async () => (await getJson(srv, room)).json?.map?.value?.good, { timeout: 5000, message: 'the server to have the edits' })
      const before = await getUpdate(srv, room)
      const fileBefore = fs.readFileSync(fileOf(srv, room))
      const docBefore = copyDoc(c.doc)

      const valid = new Backend().edit((d) => { d.getText('text').insert(0, 'a long enough string so that a cut lands inside it'); d.getMap('map').set('evil', 1) })
      const bodies = [
        ['garbage', Buffer.from('this is not a yjs update at all')],
        ['a truncated update', Buffer.from(valid).subarray(0, valid.length - 7)],
        ['a truncated update (first 5 bytes)', Buffer.from(valid).subarray(0, 5)]
      ]
      for (const [what, body] of bodies) {
        assert.throws(() => Y.applyUpdate(new Y.Doc(), new Uint8Array(body)), `${what}: Yjs itself refuses it (a check of the test)`)
        const r = await postUpdate(srv, room, body)
        assertApiError(r, 400, `POST of ${what}`)
        t.diagnostic(`POST of ${what}: ${r.status} ${r.text}`)
      }
      for (const [what, ct] of [['text/plain', 'text/plain'], ['application/json', 'application/json'], ['no Content-Type', null]]) {
        const r = await postUpdate(srv, room, valid, { contentType: ct })
        assertApiError(r, 415, `POST with ${what}`)
      }
      for (const method of ['PUT', 'DELETE', 'PATCH']) {
        const r = await httpBuffer(roomHttpUrl(srv, room), { method, headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.from(valid) })
        assertApiError(r, 405, method)
        const allow = String(r.headers.allow || '')
        assert.ok(/\bGET\b/.test(allow) && /\bPOST\b/.test(allow), `${method}: 405 with an Allow header naming GET and POST, got ${JSON.stringify(allow)}`)
      }

      // nothing changed: the clients, the room, the file
      await sleep(300)
      assert.equal(docDiff(docBefore, c.doc, ROOTS), null, 'the connected client received nothing')
      assert.equal(c.map().get('evil'), undefined)
      const after = await getUpdate(srv, room)
      assert.equal(after.headers.etag, before.headers.etag, 'the ETag is unchanged')
      assert.equal(docDiff(docFromUpdate(before.body), docFromUpdate(after.body), ROOTS), null, 'the room is unchanged')
      assert.ok(fs.readFileSync(fileOf(srv, room)).equals(fileBefore), 'the room file is unchanged')

      // a room that does not exist: 404 for every GET, and no file
      const missing = freshRoom('missing')
      assertApiError(await getUpdate(srv, missing), 404, 'GET (update) of a missing room')
      assertApiError(await getJson(srv, missing), 404, 'GET (JSON) of a missing room')
      assertApiError(await getUpdate(srv, missing, { query: { sv: 'AA' } }), 404, 'GET ?sv= of a missing room')
      assertApiError(await getUpdate(srv, missing, { headers: { 'If-None-Match': before.headers.etag } }), 404, 'GET with If-None-Match of a missing room')
      // ...nor after an invalid POST
      assertApiError(await postUpdate(srv, missing, Buffer.from('garbage')), 400, 'garbage POST to a missing room')
      assertApiError(await postUpdate(srv, missing, valid, { contentType: 'text/plain' }), 415, 'text/plain POST to a missing room')
      await sleep(100)
      assert.ok(!fs.existsSync(fileOf(srv, missing)), `no file for a room that was only read: ${JSON.stringify(fs.readdirSync(srv.dataDir).filter((f) => f.includes('missing')))}`)
      assertApiError(await getUpdate(srv, missing), 404, 'still 404')

      // max_message_size bounds the body: 413, nothing stored
      const big = new Backend().edit((d) => d.getText('text').insert(0, 'x'.repeat(4096)))
      const small = freshRoom('small')
      const r413 = await postUpdate(srv, small, big, { prefix: 'small' })
      assertApiError(r413, 413, 'a 4 KiB body on a route with max_message_size 1KiB')
      assert.ok(!fs.existsSync(fileOf(srv, small)), 'no file after a 413')
      assertPosted(await postUpdate(srv, small, new Backend().edit((d) => d.getText('text').insert(0, 'small')), { prefix: 'small' }), small, 'a small body on that route')
    } finally {
      await c.destroy()
    }
  }))

  test('a read_only route: GET ok, POST 403; a route without http_api passes plain requests on', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('ro')
    const u = new Backend().edit((d) => d.getText('text').insert(0, 'written on /rooms'))
    assertPosted(await postUpdate(srv, room, u), room)
    const fileBefore = fs.readFileSync(fileOf(srv, room))
    const g = await getUpdate(srv, room, { prefix: 'view' })
    assert.equal(assertUpdateAnswer(g, 'GET on the read_only route').getText('text').toString(), 'written on /rooms')
    const j = await getJson(srv, room, { prefix: 'view' })
    assert.equal(j.status, 200, brief(j))
    const p = await postUpdate(srv, room, new Backend().edit((d) => d.getText('text').insert(0, 'EVIL')), { prefix: 'view' })
    assertApiError(p, 403, 'POST on the read_only route')
    assert.ok(fs.readFileSync(fileOf(srv, room)).equals(fileBefore), 'the file is unchanged')
    assert.equal(docFromUpdate((await getUpdate(srv, room)).body).getText('text').toString(), 'written on /rooms')

    const n = await httpBuffer(`${srv.url}/plain/${room}`, { headers: { Accept: 'application/json' } })
    assert.equal(n.status, 299, `GET on a route without http_api goes to the next handler: ${brief(n)}`)
    assert.equal(n.text, 'next handler')
    const np = await postUpdate(srv, room, u, { prefix: 'plain' })
    assert.equal(np.status, 299, `POST on a route without http_api goes to the next handler: ${brief(np)}`)
  }))

  test('?awareness=1 lists the connected clients\' awareness states', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('aw')
    const [a, b] = await connectClients(srv.wsBase, room, 2, { namePrefix: 'aw-' })
    try {
      a.awareness.setLocalStateField('user', { name: 'alice', color: '#ff0000' })
      b.awareness.setLocalStateField('user', { name: 'bob', cursor: { index: 3 } })
      const listed = async () => {
        const r = await getAwareness(srv, room)
        if (r.status !== 200) throw new Error(brief(r))
        return r
      }
      const byId = (r) => Object.fromEntries((r.json.awareness || []).map((e) => [e.client_id, e]))
      const r = await waitFor(async () => {
        const x = await listed()
        const m = byId(x)
        return m[a.doc.clientID]?.state?.user?.name === 'alice' && m[b.doc.clientID]?.state?.user?.name === 'bob' ? x : null
      }, { timeout: 5000, message: 'both awareness states in ?awareness=1', describe: () => 'see the last answer' }).catch(async (e) => {
        throw new Error(`${e.message}\nlast answer: ${brief(await getAwareness(srv, room))}`)
      })
      t.diagnostic(r.text)
      assert.match(String(r.headers['content-type']), /application\/json/)
      assert.equal(r.json.room, room)
      const m = byId(r)
      for (const c of [a, b]) {
        const e = m[c.doc.clientID]
        assert.equal(stable(e.state), stable(c.awareness.getLocalState()), `${c.name}: the listed state is the client's`)
        assert.equal(typeof e.clock, 'number', `${c.name}: clock`)
        assert.equal(e.clock, c.awareness.meta.get(c.doc.clientID).clock, `${c.name}: the listed clock is the client's`)
      }
      assert.equal(r.json.awareness.length, 2, `two entries: ${r.text}`)

      // current states only: a client that left is no longer listed
      await b.destroy()
      await waitFor(async () => { const x = await listed(); const mm = byId(x); return !mm[b.doc.clientID] && mm[a.doc.clientID] }, {
        timeout: 5000, message: 'the client that left to be gone from ?awareness=1'
      })
    } finally {
      await destroyAll([a, b])
    }
  }))

  test('CORS: a preflight from an allowed origin gets 204 and the headers; a foreign origin gets 403', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('cors')
    assertPosted(await postUpdate(srv, room, new Backend().edit((d) => d.getText('text').insert(0, 'cors'))), room)
    const preflight = (origin, prefix = 'cors') => httpBuffer(roomHttpUrl(srv, room, {}, prefix), {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' }
    })
    const list = (h) => String(h || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)

    const ok = await preflight(ALLOWED_ORIGIN)
    t.diagnostic(`preflight: ${ok.status} ${JSON.stringify(Object.fromEntries(Object.entries(ok.headers).filter(([k]) => k.startsWith('access-control'))))}`)
    assert.equal(ok.status, 204, `preflight from ${ALLOWED_ORIGIN}: ${brief(ok)}`)
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED_ORIGIN)
    for (const m of ['get', 'post', 'options']) assert.ok(list(ok.headers['access-control-allow-methods']).includes(m), `Allow-Methods has ${m}: ${ok.headers['access-control-allow-methods']}`)
    for (const h of ['authorization', 'content-type', 'if-none-match']) assert.ok(list(ok.headers['access-control-allow-headers']).includes(h), `Allow-Headers has ${h}: ${ok.headers['access-control-allow-headers']}`)

    const bad = await preflight(FOREIGN_ORIGIN)
    assert.equal(bad.status, 403, `preflight from ${FOREIGN_ORIGIN}: ${brief(bad)}`)
    assert.notEqual(bad.headers['access-control-allow-origin'], FOREIGN_ORIGIN)

    // the requests themselves
    const g = await getJson(srv, room, { prefix: 'cors', headers: { Origin: ALLOWED_ORIGIN } })
    assert.equal(g.status, 200, brief(g))
    assert.equal(g.headers['access-control-allow-origin'], ALLOWED_ORIGIN, 'a GET from an allowed origin gets Access-Control-Allow-Origin')
    const p = await postUpdate(srv, room, new Backend().edit((d) => d.getMap('map').set('cors', 1)), { prefix: 'cors', headers: { Origin: ALLOWED_ORIGIN } })
    assertPosted(p, room, 'POST from an allowed origin')
    assert.equal(p.headers['access-control-allow-origin'], ALLOWED_ORIGIN)
    const fileBefore = fs.readFileSync(fileOf(srv, room))
    assertApiError(await getJson(srv, room, { prefix: 'cors', headers: { Origin: FOREIGN_ORIGIN } }), 403, 'GET from a foreign origin')
    assertApiError(await postUpdate(srv, room, new Backend().edit((d) => d.getMap('map').set('evil', 1)), { prefix: 'cors', headers: { Origin: FOREIGN_ORIGIN } }), 403, 'POST from a foreign origin')
    assert.ok(fs.readFileSync(fileOf(srv, room)).equals(fileBefore), 'a foreign POST changed the file')

    // a route without `origins`: the same host is allowed, others are not
    const same = `http://127.0.0.1:${srv.port}`
    const s = await getJson(srv, room, { headers: { Origin: same } })
    assert.equal(s.status, 200, `GET from the same host: ${brief(s)}`)
    assert.equal(s.headers['access-control-allow-origin'], same)
    const sp = await preflight(same, 'rooms')
    assert.equal(sp.status, 204, `preflight from the same host: ${brief(sp)}`)
    assertApiError(await getJson(srv, room, { headers: { Origin: ALLOWED_ORIGIN } }), 403, 'GET from app.example.com on the route without origins')
    assert.equal((await preflight(ALLOWED_ORIGIN, 'rooms')).status, 403, 'preflight from app.example.com on the route without origins')
    // no Origin (a backend): no CORS headers needed, just the answer
    assert.equal((await getJson(srv, room)).status, 200)
  }))

  test('POST latency: median of 50 POSTs with a client connected (diagnostic)', { timeout: 60000 }, run(async (t, srv) => {
    const room = freshRoom('lat')
    const c = await connectClient(srv.wsBase, room, { name: 'lat' })
    try {
      const b = new Backend()
      const ms = []
      for (let i = 0; i < 50; i++) {
        const r = await postUpdate(srv, room, b.edit((d) => d.getArray('array').push([i])))
        assert.equal(r.status, 200, brief(r))
        ms.push(r.ms)
      }
      await waitFor(() => c.array().length === 50, { timeout: 5000, message: 'the client to receive all 50 POSTed updates' })
      assert.deepEqual(c.array().toJSON(), [...Array(50).keys()], 'in order')
      t.diagnostic(`POST latency (fsync interval, 1 client): median ${fmt(median(ms))} ms, p90 ${fmt(quantile(ms, 0.9))} ms, max ${fmt(Math.max(...ms))} ms over ${ms.length}`)
    } finally {
      await c.destroy()
    }
  }))
})

// ---------------------------------------------------------------------------

describe('HTTP API on a jwt route: Bearer and ?token=, scopes, rooms, expiry', { skip: SKIP }, () => {
  const SECRET = hsSecret()
  let server
  before(async () => {
    server = await startWith({ wiredbDirectives: ['http_api', 'jwt {', `\tkey ${SECRET}`, '}'] }, (srv) => [
      '@jview path /jview/*',
      ...route('@jview', srv.dataDir, ['http_api', 'read_only', 'jwt {', `\tkey ${SECRET}`, '}'])
    ])
  })
  after(async () => { if (server) await server.close() })
  const run = (fn) => withServer(() => server, fn)
  const hs = (claims) => signJwt(claims, { alg: 'HS256', key: SECRET })
  const claims = (rooms, scope, extra = {}) => ({ exp: nowSec() + 600, rooms, ...(scope === undefined ? {} : { scope }), ...extra })

  test('write token POSTs (header and query); read token GETs but may not POST; another room 403; expired and missing 401', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('tok')
    const write = hs(claims([room], 'write'))
    const read = hs(claims([room], 'read'))
    const noScope = hs(claims([room], undefined))
    const other = hs(claims([`${room}-other`, 'elsewhere/*'], 'write'))
    const expired = hs(claims([room], 'write', { exp: nowSec() - 120 }))
    const b = new Backend()
    const edit = (s) => b.edit((d) => d.getArray('array').push([s]))

    // write token, as Bearer and as ?token=
    assertPosted(await postUpdate(srv, room, edit('bearer'), { token: write }), room, 'POST with a write token (Bearer)')
    assertPosted(await postUpdate(srv, room, edit('query'), { query: { token: write } }), room, 'POST with a write token (?token=)')
    const fileAfterWrites = fs.readFileSync(fileOf(srv, room))

    // read token: GET ok (both ways), POST 403; a token without scope is a read token
    for (const [label, tok] of [['read', read], ['no scope', noScope]]) {
      const g = await getUpdate(srv, room, { token: tok })
      assert.deepEqual(assertUpdateAnswer(g, `GET with a ${label} token (Bearer)`).getArray('array').toJSON(), ['bearer', 'query'])
      const gq = await getJson(srv, room, { query: { token: tok } })
      assert.equal(gq.status, 200, `GET with a ${label} token (?token=): ${brief(gq)}`)
      assert.deepEqual(gq.json.array.value, ['bearer', 'query'])
      assertApiError(await postUpdate(srv, room, edit(`${label}-evil`), { token: tok }), 403, `POST with a ${label} token (Bearer)`)
      assertApiError(await postUpdate(srv, room, edit(`${label}-evil2`), { query: { token: tok } }), 403, `POST with a ${label} token (?token=)`)
    }
    // a write token GETs too
    assert.equal((await getJson(srv, room, { token: write })).status, 200)

    // another room's token: 403; expired, missing, garbage: 401 (GET and POST)
    const cases = [
      ['a token for other rooms', { token: other }, 403],
      ['a token for other rooms (?token=)', { query: { token: other } }, 403],
      ['an expired token', { token: expired }, 401],
      ['an expired token (?token=)', { query: { token: expired } }, 401],
      ['no token', {}, 401],
      ['a garbage token', { token: 'not.a.jwt' }, 401],
      ['a token signed with another key', { token: signJwt(claims([room], 'write'), { key: hsSecret() }) }, 401]
    ]
    for (const [label, o, status] of cases) {
      assertApiError(await getUpdate(srv, room, o), status, `GET with ${label}`)
      assertApiError(await postUpdate(srv, room, edit('evil'), o), status, `POST with ${label}`)
    }
    assert.ok(fs.readFileSync(fileOf(srv, room)).equals(fileAfterWrites), 'no refused POST changed the file')

    // the read_only route with jwt: even a write token may not POST there
    const g = await getUpdate(srv, room, { token: write, prefix: 'jview' })
    assert.equal(g.status, 200, `GET on the read_only jwt route: ${brief(g)}`)
    assertApiError(await postUpdate(srv, room, edit('ro'), { token: write, prefix: 'jview' }), 403, 'POST with a write token on the read_only route')
    assertApiError(await getUpdate(srv, room, { prefix: 'jview' }), 401, 'GET without a token on the read_only jwt route')
    assert.ok(fs.readFileSync(fileOf(srv, room)).equals(fileAfterWrites), 'the file is unchanged')

    // a missing room with a valid token: 404, no file
    const missing = freshRoom('tok-missing')
    assertApiError(await getUpdate(srv, missing, { token: hs(claims([missing], 'read')) }), 404, 'GET of a missing room with a valid token')
    assert.ok(!fs.existsSync(fileOf(srv, missing)))
  }))

  test('a backend POST with a token reaches y-websocket clients holding tokens', { timeout: 30000 }, run(async (t, srv) => {
    const room = freshRoom('tokws')
    // y-websocket logs the read-only connection's "permission denied" with console.warn
    const warn = captureWarnings()
    const c = await connectClient(srv.wsBase, room, { name: 'tokws', params: { token: hs(claims([room], 'read')) } })
    try {
      const u = new Backend().edit((d) => d.getText('text').insert(0, 'signed backend'))
      assertPosted(await postUpdate(srv, room, u, { token: hs(claims([room], 'write')) }), room)
      await waitFor(() => c.text().toString() === 'signed backend', { timeout: 5000, message: 'the read-only client to receive the POST' })
    } finally {
      warn.stop()
      await c.destroy()
    }
  }))
})
