// Page helpers for the Tiptap demo of examples/ (source in examples/tiptap,
// page and bundle in examples/site/tiptap): a ProseMirror editor on a
// Y.XmlFragment, synced by the Hocuspocus provider. Opening a page and the
// connection/presence helpers are those of browser.js (the demo keeps the same
// #status, #people and window.wiredb.provider).

import path from 'node:path'
import { SITE_DIR } from './caddy.js'
import { WAIT_MS } from './browser.js'

export const TIPTAP_BUNDLE = path.join(SITE_DIR, 'tiptap', 'dist', 'bundle.js')

/** /tiptap/?doc=...&name=...&color=... on `base` */
export const tiptapUrl = (base, doc, name, color) =>
  `${base}/tiptap/?doc=${encodeURIComponent(doc)}&name=${encodeURIComponent(name)}&color=${encodeURIComponent(color)}`

// In the page: the editor's text, one line per top-level block, remote carets
// (and their name labels) left out. Blocks nest only in lists and quotes,
// which the test does not type.
function shownText () {
  const c = document.querySelector('#editor .ProseMirror').cloneNode(true)
  c.querySelectorAll('.collaboration-carets__caret').forEach((n) => n.remove())
  return [...c.children].map((b) => b.textContent).join('\n')
}

// In the page: the same from the Y.XmlFragment itself (what the provider
// syncs), without going through ProseMirror.
function fragmentText () {
  const textOf = (n) => n.toArray ? n.toArray().map(textOf).join('') : n.toString().replace(/<[^>]*>/g, '')
  return window.wiredb.fragment.toArray().map(textOf).join('\n')
}

/** the text the editor shows (see shownText) */
export async function tiptapText (page) {
  return await page.evaluate(`(${shownText})()`)
}

/** the text of the shared Y.XmlFragment */
export async function fragmentTextOf (page) {
  return await page.evaluate(`(${fragmentText})()`)
}

/** waits until both the editor and its Y.XmlFragment contain `s` */
export async function waitForTiptapText (page, s, timeout = WAIT_MS) {
  await page.waitForFunction(`(() => {
    const s = ${JSON.stringify(s)}
    return (${shownText})().includes(s) && (${fragmentText})().includes(s)
  })()`, null, { timeout })
}

/**
 * types at the end of the document, as a person would; "\n" is a press of
 * Enter, a new paragraph (keyboard.type's own "\n" makes two in ProseMirror)
 */
export async function typeAtEndTiptap (page, s) {
  await page.click('#editor .ProseMirror')
  await page.keyboard.press('Control+End')
  const lines = s.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) await page.keyboard.press('Enter')
    if (lines[i]) await page.keyboard.type(lines[i])
  }
}

/**
 * waits for the remote caret labelled `name`: the caret element of
 * @tiptap/extension-collaboration-caret, laid out, its label in view; resolves
 * to the label's and the caret's computed colours
 */
export async function waitForRemoteCaretTiptap (page, name, timeout = WAIT_MS) {
  const handle = await page.waitForFunction((name) => {
    const label = [...document.querySelectorAll('#editor .collaboration-carets__caret > .collaboration-carets__label')]
      .find((e) => e.textContent === name)
    if (!label) return null
    const caret = label.parentElement
    const r = caret.getBoundingClientRect()
    const l = label.getBoundingClientRect()
    if (r.height <= 0 || l.width <= 0 || getComputedStyle(label).visibility === 'hidden') return null
    return { label: getComputedStyle(label).backgroundColor, caret: getComputedStyle(caret).borderLeftColor }
  }, name, { timeout })
  return await handle.jsonValue()
}

/** names on the remote carets the editor shows */
export async function remoteCaretNames (page) {
  return await page.$$eval('#editor .collaboration-carets__label', (els) => els.map((e) => e.textContent))
}

/**
 * waits until the page says "saved": the server acknowledged every change of
 * this tab (provider.unsyncedChanges === 0) on a synced, connected provider
 */
export async function waitSaved (page, timeout = WAIT_MS) {
  await page.waitForFunction(() => {
    const p = window.wiredb.provider
    return document.getElementById('saved').dataset.state === 'saved' &&
      document.getElementById('saved').textContent === 'saved' &&
      p.unsyncedChanges === 0 && p.isSynced &&
      document.getElementById('status').textContent === 'connected'
  }, null, { timeout })
}
