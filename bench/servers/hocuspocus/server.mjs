// Hocuspocus (@hocuspocus/server 4.x) for bench/run.sh: no extensions, documents in
// memory only, listening on 127.0.0.1:$PORT. Stopped by its PID (SIGTERM).
import { Server } from '@hocuspocus/server'

const port = Number(process.env.PORT)
if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be set')

const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  stopOnSignals: true,
  // the same inbound limit as wiredb's default max_message_size (ws' own default is 100 MiB)
  websocketOptions: { maxPayload: 16 * 1024 * 1024 }
})
await server.listen()
console.log(`hocuspocus listening on 127.0.0.1:${port}`)
