// A Yjs peer for the Python interop tests: yjs + y-websocket's WebsocketProvider (over
// `ws`), loaded from tests/node/node_modules (or $WIREDB_NODE_DIR/node_modules).
//
//   node yjs_peer.mjs <serverUrl> <room> <mode> [timeoutMs]
//
// It connects to serverUrl + "/" + room, waits for the first sync, then in ONE transaction
// sets text += "js:hello ", map.js = "yjs", map.both = "js", array.push(["js1", 2]).
//   mode "exchange": then waits until the Python side's edits (map.py === "python") arrive.
//   mode "write":    does not wait for anyone.
// Either way it then waits until its own frames have left the socket, prints the final
// document as one JSON line {"text", "map", "array"} on stdout and exits 0.
// On timeout it prints {"error": ..., "doc": ...} and exits 2. Diagnostics go to stderr.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeDir = process.env.WIREDB_NODE_DIR || path.resolve(here, '..', 'node')
// The CommonJS builds of all three, so that y-websocket and this script share one yjs.
const require = createRequire(path.join(nodeDir, 'package.json'))
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')
const WebSocket = require('ws')

const [serverUrl, room, mode = 'exchange', timeoutArg = '20000'] = process.argv.slice(2)
if (!serverUrl || !room || !['exchange', 'write'].includes(mode)) {
  console.error('usage: node yjs_peer.mjs <serverUrl> <room> <exchange|write> [timeoutMs]')
  process.exit(64)
}
const timeoutMs = Number(timeoutArg)
const log = (...args) => console.error('[yjs_peer]', ...args)

const doc = new Y.Doc()
const text = doc.getText('text')
const map = doc.getMap('map')
const array = doc.getArray('array')
const dump = () => ({ text: text.toString(), map: map.toJSON(), array: array.toJSON() })
// pycrdt may send integers as BigInt (Yjs "bigint" content): print them as numbers.
const toJSON = (value) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? Number(v) : v))

const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  maxBackoffTime: 500
})
provider.on('status', (e) => log('status', e.status))
provider.on('connection-close', (e) => log('connection-close', e && e.code, e && e.reason))
provider.on('connection-error', () => log('connection-error'))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const deadline = Date.now() + timeoutMs
async function waitFor (predicate, what) {
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

async function main () {
  await waitFor(() => provider.synced, 'the first sync')
  log('synced; editing')
  doc.transact(() => {
    text.insert(text.length, 'js:hello ')
    map.set('js', 'yjs')
    map.set('both', 'js')
    array.push(['js1', 2])
  })
  if (mode === 'exchange') {
    await waitFor(() => map.get('py') === 'python', "the Python side's edits")
    log('saw the Python edits')
  }
  // Our update went out with ws.send(); wait until it has left the socket.
  await waitFor(() => provider.ws && provider.ws.bufferedAmount === 0, 'the socket to drain')
  await sleep(200)
  process.stdout.write(toJSON(dump()) + '\n')
  provider.destroy()
  process.exit(0)
}

main().catch((err) => {
  log(err.message)
  process.stdout.write(toJSON({ error: err.message, doc: dump() }) + '\n')
  provider.destroy()
  process.exit(2)
})
