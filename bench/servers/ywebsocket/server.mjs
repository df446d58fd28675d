// The reference y-websocket server (@y/websocket-server 0.1.5, its own src/server.js:
// documents in memory, no persistence) on 127.0.0.1:$PORT. Stopped by its PID (SIGTERM).
process.env.HOST = '127.0.0.1'
if (!process.env.PORT) throw new Error('PORT must be set')
await import('@y/websocket-server/server')
