// One room, three protocols' clients (issue 16): a Hocuspocus provider (4.x; 3.x too), a
// y-websocket WebsocketProvider and WireDB's own Python websocket client (pycrdt, wiredb
// 0.6.2 from tests/python/requirements.txt) edit the same document and converge.
//
// The Python client runs as a child process of this test (tests/python/.venv/bin/python, or
// WIREDB_PYTHON) driven over stdin/stdout: it prints {"ready": ...} once connected, makes its
// edits, then answers every "dump" line with its document as JSON, and exits on "quit". It is
// ended by its PID if it does not. Without that Python (python3 -m venv tests/python/.venv &&
// tests/python/.venv/bin/pip install -r tests/python/requirements.txt) the test is skipped,
// unless WIREDB_REQUIRE_PYTHON=1.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { startServer, withServer, caddyOnly, REPO_ROOT } from '../lib/server.js'
import { connectClient, destroyAll, freshRoom, waitFor, stable } from '../lib/clients.js'
import { MAJORS, connectHp, destroyHp, hpUrl, waitSame } from '../lib/hocuspocus.js'

const PYTHON = process.env.WIREDB_PYTHON || path.join(REPO_ROOT, 'tests', 'python', '.venv', 'bin', 'python')
let SKIP = caddyOnly('y-websocket, Hocuspocus and WireDB clients in one room need the wiredb server') ||
  (process.env.WIREDB_HP_SERVER === 'reference' ? 'the reference Hocuspocus server does not speak y-websocket' : false)
if (!SKIP && !fs.existsSync(PYTHON) && process.env.WIREDB_REQUIRE_PYTHON !== '1') {
  SKIP = `no Python with wiredb at ${PYTHON} (python3 -m venv tests/python/.venv && tests/python/.venv/bin/pip install -r tests/python/requirements.txt; or set WIREDB_PYTHON)`
}

// WireDB 0.6.x: wiredb.connect("websocket", id=<path>, host="http://127.0.0.1", port=...) requests
// http://127.0.0.1:<port>/<id>, so the route prefix goes into the id. Strings only (pycrdt
// integers arrive in Yjs as BigInt).
const PY_CLIENT = String.raw`
import json, math, sys
import anyio
import wiredb
from pycrdt import Doc, Text, Map

def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

async def main(port, ws_id):
    doc = Doc()
    text = doc.get("text", type=Text)
    m = doc.get("map", type=Map)
    snap = lambda: {"text": str(text), "map": m.to_py()}
    entered = False
    # entering returns once the server's sync step 2 arrived: bounded (as helpers.connected)
    with anyio.CancelScope(deadline=anyio.current_time() + 10) as scope:
        async with wiredb.connect("websocket", id=ws_id, doc=doc, host="http://127.0.0.1", port=port):
            entered = True
            scope.deadline = math.inf
            out({"ready": snap()})
            with doc.transaction():
                text += "py;"
                m["py"] = "python"
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    break
                out({"dump": snap()})
    if not entered:
        out({"error": "no sync step 2 within 10 s"})
        sys.exit(2)

anyio.run(main, int(sys.argv[1]), sys.argv[2])
`

/** the Python client as a child process; lines of its stdout parsed as JSON */
function startPython (port, wsId) {
  const proc = spawn(PYTHON, ['-c', PY_CLIENT, String(port), wsId], { stdio: ['pipe', 'pipe', 'pipe'] })
  const p = { proc, lines: [], stderr: '', exited: null }
  readline.createInterface({ input: proc.stdout }).on('line', (l) => { try { p.lines.push(JSON.parse(l)) } catch { p.lines.push({ raw: l }) } })
  proc.stderr.on('data', (d) => { p.stderr += d })
  p.done = new Promise((resolve) => proc.on('exit', (code, signal) => { p.exited = { code, signal }; resolve(p.exited) }))
  proc.on('error', (e) => { p.stderr += `spawn error: ${e.message}` })
  p.send = (s) => { try { proc.stdin.write(s + '\n') } catch {} }
  p.describe = () => `python: exited=${JSON.stringify(p.exited)} lines=${JSON.stringify(p.lines.slice(-3))} stderr=${p.stderr.slice(0, 3000)}`
  /** asks quit, waits (bounded), else SIGKILL by PID */
  p.stop = async () => {
    if (p.exited) return p.exited
    p.send('quit')
    const r = await Promise.race([p.done, new Promise((resolve) => setTimeout(() => resolve(null), 5000))])
    if (r) return r
    try { process.kill(proc.pid, 'SIGKILL') } catch {}
    return await p.done
  }
  return p
}

let server
before(async () => { if (!SKIP) server = await startServer() })
after(async () => { if (server) await server.close() })
const run = (fn) => withServer(() => server, fn)

test('Hocuspocus, y-websocket and the Python WireDB client in one room converge', { timeout: 45000, skip: SKIP }, run(async (t, srv) => {
  const room = freshRoom('hppy')
  const items = []
  let py
  try {
    const hps = []
    for (const major of MAJORS) { const h = await connectHp(hpUrl(srv), room, { major, label: `hp${major}` }); hps.push(h); items.push(h) }
    const y = await connectClient(srv.wsBase, room, { name: 'yws' })
    items.push(y)
    hps[0].text().insert(0, 'hp;')
    hps[0].map().set('hp', 'hocuspocus')
    await hps[0].waitAcked()

    py = startPython(srv.port, `rooms/${room}`)
    const ready = await waitFor(() => py.lines.find((l) => l.ready),
      { timeout: 15000, message: 'the Python client to connect', describe: () => py.describe() })
    assert.equal(ready.ready.map.hp, 'hocuspocus', 'the Python client got the Hocuspocus provider\'s edit on connect')

    y.text().insert(y.text().length, 'yws;')
    y.map().set('yws', 'y-websocket')
    await waitFor(() => hps.every((h) => h.map().get('py') === 'python' && h.map().get('yws') === 'y-websocket') && y.map().get('py') === 'python',
      { timeout: 10000, message: 'the Python client\'s edit at the providers and y-websocket', describe: () => hps.map((h) => h.describe()).join('\n') + '\n' + py.describe() })
    await waitSame([...hps, y], { roots: { text: 'text', map: 'map' } })
    const want = stable({ text: hps[0].text().toString(), map: hps[0].map().toJSON() })
    // the Python client converges too (asked for its document until it matches, bounded)
    let last
    await waitFor(async () => {
      const n = py.lines.length
      py.send('dump')
      const got = await waitFor(() => py.lines.slice(n).find((l) => l.dump), { timeout: 2000, message: 'a dump from Python', describe: () => py.describe() })
      last = stable(got.dump)
      return last === want
    }, { timeout: 10000, interval: 100, message: 'the Python client\'s document to equal the others\'', describe: () => `python: ${last}\nothers: ${want}\n${py.describe()}` })
    t.diagnostic(`converged: ${want}`)
    const ex = await py.stop()
    assert.equal(ex.code, 0, `the Python client exited cleanly: ${py.describe()}`)
    for (const h of hps) assert.deepEqual(h.closes, [], `${h.label}: no close`)
  } finally {
    if (py) await py.stop()
    await destroyAll(items.filter((x) => !x.major))
    await destroyHp(items.filter((x) => x.major))
  }
}))
