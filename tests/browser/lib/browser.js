// Headless Debian Chromium driven by playwright-core (which downloads no
// browser of its own), and the page helpers of the editor in examples/.

import fs from 'node:fs'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { BROWSER_DIR } from './caddy.js'

export const SCREENSHOT_DIR = path.join(BROWSER_DIR, 'screenshots')
export const WAIT_MS = 15000

export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

/** WIREDB_CHROMIUM, else `chromium` on PATH; throws with how to install it. */
export function chromiumPath () {
  const fromEnv = process.env.WIREDB_CHROMIUM
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) throw new Error(`WIREDB_CHROMIUM=${fromEnv} does not exist`)
    return fromEnv
  }
  for (const dir of (process.env.PATH || '').split(path.delimiter).concat('/usr/bin')) {
    for (const name of ['chromium', 'chromium-browser']) {
      const p = path.join(dir || '.', name)
      try { fs.accessSync(p, fs.constants.X_OK); return p } catch {}
    }
  }
  throw new Error('No Chromium: install Debian\'s package (as root: apt-get update && apt-get install -y chromium), ' +
    'or point WIREDB_CHROMIUM at a Chromium/Chrome binary. ./scripts/test.sh installs it when run as root.')
}

/** @param {string[]} [extraArgs] */
export async function launch (extraArgs = []) {
  return await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraArgs],
    timeout: 30000
  })
}

/**
 * Opens the editor in a fresh browser context (its own storage: another person).
 * Records the page's errors, its WebSocket handshakes (via CDP) and the frames
 * its WebSockets receive.
 * @param {import('playwright-core').Browser} browser
 * @param {string} url
 */
export async function openEditor (browser, url) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 560 }, ignoreHTTPSErrors: true })
  const page = await context.newPage()
  const rec = { errors: [], handshakes: [], framesReceived: 0, framesSent: 0, sockets: [] }
  page.on('pageerror', (e) => rec.errors.push(String(e && e.stack || e)))
  page.on('websocket', (ws) => {
    rec.sockets.push(ws.url())
    ws.on('framereceived', () => { rec.framesReceived++ })
    ws.on('framesent', () => { rec.framesSent++ })
  })
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    rec.handshakes.push({ status: e.response.status, headers: e.response.headers })
  })
  cdp.on('Network.webSocketFrameError', (e) => rec.handshakes.push({ error: e.errorMessage }))
  await page.goto(url, { timeout: WAIT_MS })
  await page.waitForFunction(() => window.wiredb && window.wiredb.provider, null, { timeout: WAIT_MS })
  // every status the provider reports from here on
  await page.evaluate(() => {
    window.statusLog = []
    window.wiredb.provider.on('status', (e) => window.statusLog.push(e.status))
  })
  return { page, context, rec }
}

/** waits until the page shows "connected" and its document is synced */
export async function waitConnected (page, timeout = WAIT_MS) {
  await page.waitForFunction(() =>
    document.getElementById('status').textContent === 'connected' && window.wiredb.provider.synced,
  null, { timeout })
}

/** the text the editor shows (remote carets and their name labels left out) */
export async function editorText (page) {
  return await page.evaluate(() => {
    const c = document.querySelector('.cm-content').cloneNode(true)
    c.querySelectorAll('.cm-ySelectionCaret, .cm-placeholder').forEach((n) => n.remove())
    return [...c.querySelectorAll('.cm-line')].map((l) => l.textContent).join('\n')
  })
}

/** waits until the editor shows text containing `s` (and the Y.Text has it) */
export async function waitForText (page, s, timeout = WAIT_MS) {
  await page.waitForFunction((s) => {
    const c = document.querySelector('.cm-content').cloneNode(true)
    c.querySelectorAll('.cm-ySelectionCaret, .cm-placeholder').forEach((n) => n.remove())
    const shown = [...c.querySelectorAll('.cm-line')].map((l) => l.textContent).join('\n')
    return shown.includes(s) && window.wiredb.ytext.toString().includes(s)
  }, s, { timeout })
}

/** types at the end of the document, as a person would */
export async function typeAtEnd (page, s) {
  await page.click('.cm-content')
  await page.keyboard.press('Control+End')
  await page.keyboard.type(s)
}

/** names in the "Here now" list */
export async function presentNames (page) {
  return await page.$$eval('#people li .name', (els) => els.map((e) => e.textContent))
}

export async function waitForPresent (page, names, timeout = WAIT_MS) {
  await page.waitForFunction((names) => {
    const shown = [...document.querySelectorAll('#people li .name')].map((e) => e.textContent)
    return names.every((n) => shown.includes(n)) && shown.length === names.length
  }, names, { timeout })
}

/** waits for the remote caret labelled `name` to be shown in the editor (opacity 1) */
export async function waitForRemoteCaret (page, name, timeout = WAIT_MS) {
  await page.waitForFunction((name) => [...document.querySelectorAll('.cm-ySelectionInfo')].some((e) =>
    e.textContent === name && getComputedStyle(e).opacity === '1' && e.getBoundingClientRect().width > 0
  ), name, { timeout })
}

export async function screenshot (page, name) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true })
  const file = path.join(SCREENSHOT_DIR, name)
  await page.screenshot({ path: file })
  return file
}
