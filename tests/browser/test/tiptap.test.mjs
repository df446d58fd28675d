// The Tiptap demo of examples/ (a rich-text editor on the Hocuspocus
// provider) in headless Chromium, against our Caddy running
// examples/Caddyfile (on free ports, with a temp data dir): the provider talks
// to the same `wiredb /rooms/*` route as the CodeMirror demo's y-websocket,
// at its base URL ws://host/rooms/, the document name being the room key.
//
// Needs: WIREDB_CADDY_BIN (our Caddy), the bundle
// (examples/site/tiptap/dist/bundle.js) and Chromium (`chromium` on PATH or
// WIREDB_CHROMIUM). ../README.md says how.

import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Caddy } from '../lib/caddy.js'
import {
  launch, openEditor, waitConnected, waitForPresent, presentNames, screenshot, WAIT_MS
} from '../lib/browser.js'
import {
  TIPTAP_BUNDLE, tiptapUrl, tiptapText, fragmentTextOf, waitForTiptapText, typeAtEndTiptap,
  waitForRemoteCaretTiptap, remoteCaretNames, waitSaved
} from '../lib/tiptap.js'

if (!fs.existsSync(TIPTAP_BUNDLE)) {
  throw new Error(`${TIPTAP_BUNDLE} is missing: build it with npm --prefix examples/tiptap ci && npm --prefix examples/tiptap run build`)
}

const ALICE = ['Alice', '#ee6352']
const BOB = ['Bob', '#30bced']
const CAROL = ['Carol', '#8acb88']
const DAVE = ['Dave', '#ffbc42']
const rgb = (hex) => `rgb(${[1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(', ')})`

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
          const file = await screenshot(p.page, `FAILED-tiptap-${name}.png`)
          const state = await p.page.evaluate(() => ({
            status: window.statusLog, unsynced: window.wiredb.provider.unsyncedChanges, synced: window.wiredb.provider.isSynced
          })).catch(() => null)
          process.stderr.write(`screenshot of ${name}: ${file}; provider: ${JSON.stringify(state)}; page errors: ${JSON.stringify(p.rec.errors)}; handshakes: ${JSON.stringify(p.rec.handshakes)}\n`)
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

describe('Tiptap demo: Hocuspocus provider on the wiredb route (examples/Caddyfile, http://)', () => {
  let caddy, browser
  const pages = {}
  const doc = 'tiptap-notes'
  const run = (fn) => diagnose(() => caddy, () => pages, fn)
  const title = 'Launch plan'
  const para1 = 'Alice: rich text over the Hocuspocus protocol.'
  const para2 = 'Bob: same Caddy, same rooms.'

  before(async () => {
    caddy = await new Caddy({ name: 'tiptap' }).start()
    browser = await launch()
  })
  after(async () => {
    if (browser) await browser.close()
    if (caddy) await caddy.close()
  })

  test('two pages on one document: each sees what the other types, with the other\'s caret and name; "saved" once the server acknowledged', run(async () => {
    pages.alice = await openEditor(browser, tiptapUrl(caddy.httpUrl, doc, ...ALICE))
    pages.bob = await openEditor(browser, tiptapUrl(caddy.httpUrl, doc, ...BOB))
    const { alice, bob } = pages
    await waitConnected(alice.page)
    await waitConnected(bob.page)
    await waitSaved(alice.page)
    await waitSaved(bob.page)
    assert.equal(await alice.page.textContent('#doc'), doc)
    // the provider connects to the route's base URL, trailing slash kept
    const wsUrl = `ws://localhost:${caddy.httpPort}/rooms/`
    assert.equal(await alice.page.textContent('#ws-url'), wsUrl)
    for (const p of [alice, bob]) {
      assert.deepEqual(p.rec.sockets, [wsUrl])
      assert.deepEqual(p.rec.handshakes.map((h) => h.status), [101])
      assert.equal(await p.page.evaluate(() => window.wiredb.provider.authorizedScope), 'read-write')
    }

    await waitForPresent(alice.page, ['Alice', 'Bob'])
    await waitForPresent(bob.page, ['Bob', 'Alice'])
    assert.deepEqual(await presentNames(bob.page), ['Bob', 'Alice'], 'this tab first, then the others')

    // Alice writes a heading (from the toolbar) and a paragraph
    await alice.page.click('#editor .ProseMirror')
    await alice.page.click('#toolbar button[data-action="h1"]')
    await alice.page.keyboard.type(title)
    await alice.page.keyboard.press('Enter')
    await alice.page.keyboard.type(para1)
    await waitForTiptapText(bob.page, para1)
    // the structure crossed too: Bob's first block is an h1
    assert.equal(await bob.page.textContent('#editor .ProseMirror > h1'), title)
    const aliceCaret = await waitForRemoteCaretTiptap(bob.page, 'Alice')
    assert.deepEqual(aliceCaret, { label: rgb(ALICE[1]), caret: rgb(ALICE[1]) }, 'Alice\'s caret in her colour')

    await typeAtEndTiptap(bob.page, '\n' + para2)
    await waitForTiptapText(alice.page, para2)
    const bobCaret = await waitForRemoteCaretTiptap(alice.page, 'Bob')
    assert.deepEqual(bobCaret, { label: rgb(BOB[1]), caret: rgb(BOB[1]) })
    assert.deepEqual(await remoteCaretNames(alice.page), ['Bob'], 'Alice sees Bob\'s caret, not her own')

    const expected = [title, para1, para2].join('\n')
    for (const p of [alice, bob]) {
      await waitForTiptapText(p.page, expected)
      assert.equal(await tiptapText(p.page), expected)
      assert.equal(await fragmentTextOf(p.page), expected)
      // every update of this tab acknowledged (SyncStatus): "saved"
      await waitSaved(p.page)
    }

    await screenshot(alice.page, 'tiptap-alice.png')
    await screenshot(bob.page, 'tiptap-bob.png')
    assertNoPageErrors(pages)
  }))

  test('Caddy restarted with an edit made while it was down: both pages reconnect and converge, a later page sees it all', run(async () => {
    const { alice, bob } = pages
    assert.ok(alice && bob, 'the previous test opened the pages')
    const before = await tiptapText(alice.page)

    const stopped = await caddy.stop()
    assert.ok(stopped.graceful, 'caddy exited on SIGTERM')
    const file = path.join(caddy.dataDir, `${doc}.y`)
    assert.ok(fs.existsSync(file), `the document's room file in ${caddy.dataDir}: ${fs.readdirSync(caddy.dataDir)}`)

    for (const p of [alice, bob]) {
      await p.page.waitForFunction(() => window.statusLog.includes('disconnected') && document.getElementById('status').textContent !== 'connected', null, { timeout: WAIT_MS })
    }
    await waitForPresent(alice.page, ['Alice'])
    assert.deepEqual(await remoteCaretNames(alice.page), [], 'no remote caret while the server is away')

    // Alice types while the server is down: the page says it is not saved
    const offline = 'Alice (offline): typed while Caddy was down.'
    await typeAtEndTiptap(alice.page, '\n' + offline)
    await alice.page.waitForFunction(() => document.getElementById('saved').dataset.state === 'offline' && window.wiredb.provider.unsyncedChanges > 0, null, { timeout: WAIT_MS })
    await screenshot(alice.page, 'tiptap-restart-alice-offline.png')

    await caddy.start()
    const expected = before + '\n' + offline
    for (const p of [alice, bob]) {
      await waitConnected(p.page)
      const log = await p.page.evaluate(() => window.statusLog)
      assert.deepEqual(log.slice(-1), ['connected'], `status history: ${log}`)
      assert.ok(log.includes('connecting'))
    }
    await waitForTiptapText(bob.page, offline)
    for (const p of [alice, bob]) {
      assert.equal(await tiptapText(p.page), expected)
      assert.equal(await fragmentTextOf(p.page), expected)
      await waitSaved(p.page)
    }
    await waitForPresent(alice.page, ['Alice', 'Bob'])
    await waitForPresent(bob.page, ['Bob', 'Alice'])

    // Carol joins after the restart: she gets all of it, and sees the others' carets
    pages.carol = await openEditor(browser, tiptapUrl(caddy.httpUrl, doc, ...CAROL))
    const { carol } = pages
    await waitConnected(carol.page)
    await waitForTiptapText(carol.page, expected)
    assert.equal(await tiptapText(carol.page), expected)
    assert.equal(await carol.page.textContent('#editor .ProseMirror > h1'), title)
    await waitForPresent(carol.page, ['Carol', 'Alice', 'Bob'])
    await typeAtEndTiptap(bob.page, '\nBob: welcome, Carol!')
    await waitForTiptapText(carol.page, 'Bob: welcome, Carol!')
    await waitForRemoteCaretTiptap(carol.page, 'Bob')
    await alice.page.click('#editor .ProseMirror > h1')
    await waitForRemoteCaretTiptap(carol.page, 'Alice')
    await typeAtEndTiptap(carol.page, '\nCarol: hi!')
    await waitForTiptapText(alice.page, 'Carol: hi!')
    await waitForRemoteCaretTiptap(alice.page, 'Carol')
    await waitForTiptapText(bob.page, 'Carol: hi!')
    await screenshot(carol.page, 'tiptap-restart-carol.png')
    assertNoPageErrors(pages)
  }))

  test('"saved" means stored: every page closed, Caddy killed (SIGKILL) and started again, a new page reads it all from the file', run(async () => {
    assert.ok(pages.carol, 'the previous test opened the pages')
    for (const p of Object.values(pages)) await waitSaved(p.page)
    const expected = await tiptapText(pages.carol.page)
    assert.ok(expected.includes('Alice (offline)') && expected.endsWith('Carol: hi!'), expected)
    assertNoPageErrors(pages)
    for (const [name, p] of Object.entries(pages)) {
      await p.context.close()
      delete pages[name]
    }
    // no graceful flush on the way out: what was acknowledged is in the file
    await caddy.kill()
    await caddy.start()
    pages.dave = await openEditor(browser, tiptapUrl(caddy.httpUrl, doc, ...DAVE))
    await waitConnected(pages.dave.page)
    await waitForTiptapText(pages.dave.page, 'Carol: hi!')
    assert.equal(await tiptapText(pages.dave.page), expected)
    assert.deepEqual(await presentNames(pages.dave.page), ['Dave'])
    await screenshot(pages.dave.page, 'tiptap-after-kill-dave.png')
    assertNoPageErrors(pages)
  }))
})
