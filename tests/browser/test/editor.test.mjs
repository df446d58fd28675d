// The collaborative editor of examples/ in headless Chromium, against our
// Caddy running examples/Caddyfile (on free ports, with a temp data dir).
//
// Needs: WIREDB_CADDY_BIN (our Caddy), the bundle (examples/site/dist/bundle.js)
// and Chromium (`chromium` on PATH or WIREDB_CHROMIUM). ../README.md says how.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Caddy, BUNDLE, REPO_ROOT } from '../lib/caddy.js'
import {
  launch, openEditor, waitConnected, waitForText, editorText, typeAtEnd,
  waitForPresent, presentNames, waitForRemoteCaret, screenshot, WAIT_MS
} from '../lib/browser.js'

if (!fs.existsSync(BUNDLE)) {
  throw new Error(`${BUNDLE} is missing: build it with npm --prefix examples/app ci && npm --prefix examples/app run build`)
}

const editorUrl = (base, room, name, color) =>
  `${base}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}&color=${encodeURIComponent(color)}`
const ALICE = ['Alice', '#ee6352']
const BOB = ['Bob', '#30bced']
const CAROL = ['Carol', '#8acb88']

/** runs fn; on failure prints the Caddy log and screenshots the open pages */
function diagnose (getCaddy, getPages, fn) {
  return async (t) => {
    try {
      await fn(t)
    } catch (e) {
      const caddy = getCaddy()
      if (caddy) caddy.dumpLog(`caddy log for failed test "${t.name}"`)
      for (const [name, p] of Object.entries(getPages())) {
        if (!p || p.page.isClosed()) continue
        try {
          const file = await screenshot(p.page, `FAILED-${name}.png`)
          process.stderr.write(`screenshot of ${name}: ${file}; page errors: ${JSON.stringify(p.rec.errors)}; handshakes: ${JSON.stringify(p.rec.handshakes)}\n`)
        } catch {}
      }
      throw e
    }
  }
}

function assertNoPageErrors (pages) {
  for (const [name, p] of Object.entries(pages)) {
    if (p) assert.deepEqual(p.rec.errors, [], `uncaught errors in ${name}'s page`)
  }
}

describe('collaborative editor over http:// (examples/Caddyfile)', () => {
  let caddy, browser
  const pages = {}
  const room = 'notes'
  const run = (fn) => diagnose(() => caddy, () => pages, fn)

  before(async () => {
    caddy = await new Caddy({ name: 'example' }).start()
    browser = await launch()
  })
  after(async () => {
    if (browser) await browser.close()
    if (caddy) await caddy.close()
  })

  test('two pages on one room: typing in one shows in the other, with the name and cursor of who typed', run(async () => {
    pages.alice = await openEditor(browser, editorUrl(caddy.httpUrl, room, ...ALICE))
    pages.bob = await openEditor(browser, editorUrl(caddy.httpUrl, room, ...BOB))
    const { alice, bob } = pages
    await waitConnected(alice.page)
    await waitConnected(bob.page)
    assert.equal(await alice.page.textContent('#room'), room)
    assert.equal(await alice.page.textContent('#ws-url'), `ws://localhost:${caddy.httpPort}/rooms/${room}`)

    await waitForPresent(alice.page, ['Alice', 'Bob'])
    await waitForPresent(bob.page, ['Bob', 'Alice'])
    assert.deepEqual(await presentNames(bob.page), ['Bob', 'Alice'], 'this tab first, then the others')
    assert.equal(await bob.page.textContent('#people li.me .name'), 'Bob')

    const line1 = '# Meeting notes\nAlice: the wiredb room keeps every keystroke.'
    await typeAtEnd(alice.page, line1)
    await waitForText(bob.page, line1)
    await waitForRemoteCaret(bob.page, 'Alice')

    const line2 = '\nBob: and Caddy serves the page too.'
    await typeAtEnd(bob.page, line2)
    await waitForText(alice.page, line1 + line2)
    await waitForRemoteCaret(alice.page, 'Bob')
    assert.equal(await editorText(alice.page), await editorText(bob.page))
    // the remote caret's label has the user's colour
    const bg = await alice.page.$eval('.cm-ySelectionInfo', (e) => getComputedStyle(e).backgroundColor)
    assert.equal(bg, 'rgb(48, 188, 237)') // #30bced

    await screenshot(alice.page, 'http-alice.png')
    await screenshot(bob.page, 'http-bob.png')
    assertNoPageErrors(pages)
  }))

  test('Caddy restarted (SIGTERM, start on the same port and data dir): pages reconnect, the text stays, a later page sees it all', run(async () => {
    const { alice, bob } = pages
    assert.ok(alice && bob, 'the previous test opened the pages')
    const before = await editorText(alice.page)

    const stopped = await caddy.stop()
    assert.ok(stopped.graceful, 'caddy exited on SIGTERM')
    // the room was flushed to its file on the way out
    const files = fs.readdirSync(caddy.dataDir)
    assert.ok(files.includes(`${room}.y`), `room file in ${caddy.dataDir}: ${files}`)
    assert.ok(fs.statSync(path.join(caddy.dataDir, `${room}.y`)).size > before.length)

    for (const p of [alice, bob]) {
      await p.page.waitForFunction(() => window.statusLog.includes('disconnected') && document.getElementById('status').textContent !== 'connected', null, { timeout: WAIT_MS })
    }
    // the presence list shrinks to this tab alone while the server is away
    await waitForPresent(alice.page, ['Alice'])
    // an edit made while the server is down goes out on reconnection
    const offline = '\nAlice (offline): typed while Caddy was down.'
    await typeAtEnd(alice.page, offline)
    await screenshot(bob.page, 'restart-bob-disconnected.png')

    await caddy.start()
    await waitConnected(alice.page)
    await waitConnected(bob.page)
    for (const p of [alice, bob]) {
      const log = await p.page.evaluate(() => window.statusLog)
      assert.deepEqual(log.slice(-1), ['connected'], `status history: ${log}`)
      assert.ok(log.includes('connecting'))
    }
    await waitForText(bob.page, before + offline)
    assert.equal(await editorText(alice.page), before + offline)
    assert.equal(await editorText(bob.page), before + offline)
    await waitForPresent(alice.page, ['Alice', 'Bob'])
    await waitForPresent(bob.page, ['Bob', 'Alice'])

    pages.carol = await openEditor(browser, editorUrl(caddy.httpUrl, room, ...CAROL))
    const { carol } = pages
    await waitConnected(carol.page)
    await waitForText(carol.page, before + offline)
    assert.equal(await editorText(carol.page), before + offline)
    await waitForPresent(carol.page, ['Carol', 'Alice', 'Bob'])
    await waitForPresent(alice.page, ['Alice', 'Bob', 'Carol'])
    // Carol sees where the others are
    await typeAtEnd(alice.page, '\n')
    await typeAtEnd(bob.page, 'Bob: welcome, Carol!')
    await waitForText(carol.page, 'Bob: welcome, Carol!')
    await waitForRemoteCaret(carol.page, 'Bob')
    await waitForRemoteCaret(carol.page, 'Alice')
    await typeAtEnd(carol.page, '\nCarol: hi!')
    await waitForText(alice.page, 'Carol: hi!')
    await waitForRemoteCaret(alice.page, 'Carol')
    await waitForText(bob.page, 'Carol: hi!')
    await carol.page.click('.cm-line >> nth=1')
    // Bob selects a word: Carol sees the selection in Bob's colour
    await bob.page.click('.cm-line >> nth=4')
    await bob.page.keyboard.press('End')
    for (let i = 0; i < 'Carol!'.length; i++) await bob.page.keyboard.press('Shift+ArrowLeft')
    await alice.page.click('.cm-line >> nth=2')
    await alice.page.keyboard.press('End')
    await carol.page.waitForFunction(() => [...document.querySelectorAll('.cm-ySelection')].some((e) => e.textContent === 'Carol!'), null, { timeout: WAIT_MS })
    await waitForRemoteCaret(carol.page, 'Bob')

    await screenshot(alice.page, 'restart-alice.png')
    const shot = await screenshot(carol.page, 'restart-carol-with-alice-and-bob.png')
    if (process.env.WIREDB_UPDATE_SCREENSHOT === '1') {
      fs.mkdirSync(path.join(REPO_ROOT, 'docs'), { recursive: true })
      fs.copyFileSync(shot, path.join(REPO_ROOT, 'docs', 'screenshot.png'))
      process.stderr.write(`copied ${shot} to docs/screenshot.png\n`)
    }
    assertNoPageErrors(pages)
  }))
})

describe('collaborative editor over https:// and wss:// (the tls internal site)', () => {
  let caddy, browser
  const pages = {}
  const room = 'tls-notes'
  const run = (fn) => diagnose(() => caddy, () => pages, fn)

  before(async () => {
    caddy = await new Caddy({ name: 'tls' }).start()
    browser = await launch(['--ignore-certificate-errors'])
  })
  after(async () => {
    if (browser) await browser.close()
    if (caddy) await caddy.close()
  })

  test('two pages: typing and presence flow over wss://; the page comes over HTTP/2, the WebSocket over HTTP/1.1', run(async () => {
    pages.alice = await openEditor(browser, editorUrl(caddy.httpsUrl, room, ...ALICE))
    pages.bob = await openEditor(browser, editorUrl(caddy.httpsUrl, room, ...BOB))
    const { alice, bob } = pages
    await waitConnected(alice.page)
    await waitConnected(bob.page)
    assert.equal(await alice.page.textContent('#ws-url'), `wss://localhost:${caddy.httpsPort}/rooms/${room}`)
    await waitForPresent(bob.page, ['Bob', 'Alice'])

    const text = 'Over TLS: wss:// through tls internal.'
    await typeAtEnd(alice.page, text)
    await waitForText(bob.page, text)
    await waitForRemoteCaret(bob.page, 'Alice')
    await typeAtEnd(bob.page, ' Bob agrees.')
    await waitForText(alice.page, text + ' Bob agrees.')
    await waitForRemoteCaret(alice.page, 'Bob')

    for (const [name, p] of Object.entries(pages)) {
      // the page itself was fetched over HTTP/2 ...
      const proto = await p.page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol)
      assert.equal(proto, 'h2', `${name}'s page protocol`)
      // ... and the WebSocket is an HTTP/1.1 upgrade (101), not RFC 8441 over that h2 connection
      assert.deepEqual(p.rec.sockets, [`wss://localhost:${caddy.httpsPort}/rooms/${room}`])
      assert.deepEqual(p.rec.handshakes.map((h) => h.status), [101], `${name}'s handshakes: ${JSON.stringify(p.rec.handshakes)}`)
      assert.ok(p.rec.framesReceived >= 3 && p.rec.framesSent >= 3, `${name}'s frames: ${p.rec.framesReceived} in, ${p.rec.framesSent} out`)
    }
    // Caddy's access log agrees: the upgrade came as HTTP/1.1, the page as HTTP/2.0
    const access = caddy.accessLog().filter((e) => e.request?.host === `localhost:${caddy.httpsPort}`)
    const ws = access.filter((e) => e.request.uri === `/rooms/${room}`)
    assert.equal(ws.length, 2, `two WebSocket requests logged: ${JSON.stringify(ws)}`)
    for (const e of ws) {
      assert.equal(e.request.proto, 'HTTP/1.1')
      assert.equal(e.status, 101)
      assert.equal(e.request.tls?.proto, 'http/1.1', 'ALPN of the WebSocket connection')
    }
    const pageReqs = access.filter((e) => e.request.uri.startsWith('/?room='))
    assert.ok(pageReqs.length >= 2 && pageReqs.every((e) => e.request.proto === 'HTTP/2.0' && e.request.tls?.proto === 'h2'), JSON.stringify(pageReqs.map((e) => e.request)))

    await screenshot(alice.page, 'tls-alice.png')
    await screenshot(bob.page, 'tls-bob.png')
    assertNoPageErrors(pages)
  }))

  test('page over HTTP/3 (QUIC forced): the WebSocket still connects, over HTTP/1.1', run(async () => {
    // Chromium speaks QUIC only to a certificate it trusts: --ignore-certificate-errors
    // does not cover QUIC, the certificate's key hash does.
    const spki = await caddy.spkiHash()
    const h3 = await launch([
      `--origin-to-force-quic-on=localhost:${caddy.httpsPort}`,
      `--ignore-certificate-errors-spki-list=${spki}`,
      // Caddy binds 127.0.0.1 only; UDP to ::1 would get no answer
      '--host-resolver-rules=MAP localhost 127.0.0.1'
    ])
    try {
      const carol = pages.carol = await openEditor(h3, editorUrl(caddy.httpsUrl, room, ...CAROL))
      await waitConnected(carol.page)
      await waitForText(carol.page, 'Bob agrees.')
      await waitForPresent(carol.page, ['Carol', 'Alice', 'Bob'])
      await typeAtEnd(carol.page, ' Carol, over h3.')
      await waitForText(pages.alice.page, 'Carol, over h3.')
      assert.equal(await carol.page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h3')
      assert.deepEqual(carol.rec.handshakes.map((h) => h.status), [101])
      const ws = caddy.accessLog().filter((e) => e.request?.uri === `/rooms/${room}`)
      assert.equal(ws.length, 3)
      assert.equal(ws[2].request.proto, 'HTTP/1.1')
      assert.ok(caddy.accessLog().some((e) => e.request?.proto === 'HTTP/3.0'), 'Caddy logged HTTP/3 requests')
      await screenshot(carol.page, 'h3-carol.png')
      assertNoPageErrors(pages)
    } finally {
      delete pages.carol
      await h3.close()
    }
  }))
})

describe('GODEBUG=http2xconnect=1: WebSockets over HTTP/2 (RFC 8441)', () => {
  let caddy, browser
  const pages = {}
  const room = 'xconnect'
  const run = (fn) => diagnose(() => caddy, () => pages, fn)

  before(async () => {
    // The example's https:// site as it is, plus a copy on a server limited to
    // HTTP/1.1 and HTTP/3.
    caddy = await new Caddy({
      name: 'xconnect',
      env: { GODEBUG: 'http2xconnect=1' },
      extraHttpsSites: 1,
      globalLines: ['servers 127.0.0.1:{extraPort0} {', '\tprotocols h1 h3', '}']
    }).start()
    browser = await launch(['--ignore-certificate-errors'])
  })
  after(async () => {
    if (browser) await browser.close()
    if (caddy) await caddy.close()
  })

  test('Chromium then opens the WebSocket as an extended CONNECT on the h2 connection, which wiredb serves; it converges with a page on HTTP/1.1', run(async () => {
    // With extended CONNECT advertised, Chromium uses it for the WebSocket (RFC 8441).
    pages.h2 = await openEditor(browser, editorUrl(caddy.httpsUrl, room, ...ALICE))
    await waitConnected(pages.h2.page)
    assert.equal(await pages.h2.page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h2')
    // Chromium's own record of the handshake: 200 on a stream, not HTTP/1.1's 101
    await pages.h2.page.waitForFunction(() => true)
    assert.ok(pages.h2.rec.handshakes.length >= 1, JSON.stringify(pages.h2.rec.handshakes))
    assert.deepEqual(pages.h2.rec.handshakes.filter((h) => h.status === 101), [], JSON.stringify(pages.h2.rec.handshakes))
    assert.ok(pages.h2.rec.handshakes.some((h) => h.status === 200), JSON.stringify(pages.h2.rec.handshakes))
    assert.ok(pages.h2.rec.framesReceived > 0, 'frames received over the h2 stream')

    // The same room from a site limited to HTTP/1.1 and HTTP/3: an HTTP/1.1 upgrade.
    const h1site = `https://localhost:${caddy.extraPorts[0]}`
    pages.h1 = await openEditor(browser, editorUrl(h1site, room, ...BOB))
    await waitConnected(pages.h1.page)
    assert.deepEqual(pages.h1.rec.handshakes.map((h) => h.status), [101])
    assert.equal(await pages.h1.page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'http/1.1')
    await typeAtEnd(pages.h1.page, 'typed over HTTP/1.1;')
    await pages.h2.page.waitForFunction(() => window.wiredb.ytext.toString() === 'typed over HTTP/1.1;', null, { timeout: WAIT_MS })
    await typeAtEnd(pages.h2.page, ' typed over h2')
    await pages.h1.page.waitForFunction(() => window.wiredb.ytext.toString() === 'typed over HTTP/1.1; typed over h2', null, { timeout: WAIT_MS })
    assertNoPageErrors(pages)

    // Caddy stops (SIGTERM) with the h2 WebSocket open: its handler does not
    // hold the exit up (Caddy waits for every request's handler).
    const t0 = Date.now()
    const stopped = await caddy.stop()
    assert.ok(stopped.graceful, `Caddy did not exit within its stop timeout with an h2 WebSocket open (${Date.now() - t0} ms)`)
    await pages.h2.page.waitForFunction(() => document.getElementById('status').textContent !== 'connected', null, { timeout: WAIT_MS })
  }))
})
