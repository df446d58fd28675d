// A collaborative rich-text editor on a wiredb room: Tiptap 3 (ProseMirror)
// bound to a Y.XmlFragment by @tiptap/extension-collaboration, synced through
// the unmodified Hocuspocus provider, with everyone's caret and name shown by
// @tiptap/extension-collaboration-caret.
//
// The document comes from the URL (/tiptap/?doc=notes, ?room=notes or
// /tiptap/#notes; default "tiptap-demo"); it is the room key: document
// "notes/42" is the room a y-websocket client reaches at /rooms/notes/42. The
// WebSocket goes to the same host, ws: for an http: page and wss: for https:,
// at the route's base URL /rooms/ (the `wiredb /rooms/*` route of
// examples/Caddyfile), kept as written by `preserveTrailingSlash`: without it
// the provider drops the slash and asks for /rooms, which the route serves too.

import * as Y from 'yjs'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'

const DEFAULT_DOC = 'tiptap-demo'

/** The document name: ?doc=..., else ?room=..., else the #fragment, else DEFAULT_DOC. */
export function documentFromLocation (loc) {
  const params = new URLSearchParams(loc.search)
  const q = params.get('doc') || params.get('room')
  const h = decodeURIComponent(loc.hash.replace(/^#/, ''))
  const name = (q || h || DEFAULT_DOC).trim().replace(/^\/+|\/+$/g, '')
  return name || DEFAULT_DOC
}

/** ws://host/rooms/ or wss://host/rooms/: the route's base; the document name travels in the messages. */
export function serverUrlFromLocation (loc) {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/rooms/`
}

// The caret colours of the CodeMirror demo.
const COLORS = ['#30bced', '#6eeb83', '#ffbc42', '#ecd444', '#ee6352', '#9ac2c9', '#8acb88', '#1be7ff']
const ADJECTIVES = ['Quick', 'Calm', 'Bright', 'Brave', 'Clever', 'Gentle', 'Lucky', 'Witty']
const ANIMALS = ['Otter', 'Fox', 'Heron', 'Lynx', 'Panda', 'Robin', 'Seal', 'Wombat']
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)]
const USER_KEY = 'wiredb-tiptap-user'

// Who this tab is: ?name= and ?color= win; otherwise a random name and colour
// kept for the tab's session (sessionStorage, so two tabs are two people).
function localUser (loc) {
  const params = new URLSearchParams(loc.search)
  let saved = null
  try { saved = JSON.parse(sessionStorage.getItem(USER_KEY) || 'null') } catch {}
  const user = {
    name: params.get('name') || saved?.name || `${pick(ADJECTIVES)} ${pick(ANIMALS)}`,
    color: params.get('color') || saved?.color || pick(COLORS)
  }
  if (!/^#[0-9a-fA-F]{6}$/.test(user.color)) user.color = pick(COLORS)
  saveUser(user)
  return user
}

function saveUser (user) {
  try { sessionStorage.setItem(USER_KEY, JSON.stringify({ name: user.name, color: user.color })) } catch {}
}

function start () {
  const name = documentFromLocation(location)
  const url = serverUrlFromLocation(location)
  const user = localUser(location)
  const $ = (id) => document.getElementById(id)

  const doc = new Y.Doc()
  const provider = new HocuspocusProvider({
    url,
    preserveTrailingSlash: true,
    name,
    document: doc,
    // Back online within ~5 s of the server's return (the default backoff
    // grows to 30 s).
    maxDelay: 5000
  })

  $('doc').textContent = name
  $('ws-url').textContent = provider.configuration.websocketProvider.url
  document.title = `${name} · Tiptap · WireDB for Caddy`

  // Connection status, straight from the provider's status events, and
  // whether the server has stored every change of this tab: each update the
  // provider sends counts in `unsyncedChanges` until the server's SyncStatus
  // acknowledges it.
  const status = $('status')
  const saved = $('saved')
  let connection = 'connecting'
  let failure = ''
  const render = () => {
    status.textContent = failure ? 'refused' : connection
    status.dataset.status = failure ? 'refused' : connection
    status.title = failure ? `Authentication failed: ${failure}` : 'WebSocket connection to the server'
    document.body.dataset.status = connection
    const n = provider.unsyncedChanges
    let state, text
    if (n === 0 && provider.isSynced) {
      state = 'saved'; text = 'saved'
    } else if (connection === 'connected') {
      state = 'saving'; text = n > 0 ? `saving ${n} change${n === 1 ? '' : 's'}…` : 'syncing…'
    } else {
      state = 'offline'; text = n > 0 ? `${n} unsaved change${n === 1 ? '' : 's'}` : 'not synced'
    }
    saved.textContent = text
    saved.dataset.state = state
    document.body.dataset.saved = state
  }
  provider.on('status', ({ status: s }) => {
    connection = s
    if (s === 'connected') failure = ''
    render()
  })
  provider.on('synced', render)
  provider.on('unsyncedChanges', render)
  provider.on('authenticationFailed', ({ reason }) => { failure = reason || 'refused'; render() })
  render()

  // Who is present: every awareness state with a user, this tab first.
  const people = $('people')
  const renderPeople = () => {
    const states = [...provider.awareness.getStates().entries()]
      .filter(([, st]) => st && st.user)
      .sort(([a], [b]) => (a === doc.clientID ? -1 : b === doc.clientID ? 1 : a - b))
    people.replaceChildren(...states.map(([clientID, st]) => {
      const li = document.createElement('li')
      li.dataset.clientId = String(clientID)
      li.style.setProperty('--user-color', st.user.color || '#888')
      const dot = document.createElement('span')
      dot.className = 'dot'
      const n = document.createElement('span')
      n.className = 'name'
      n.textContent = String(st.user.name || 'Anonymous')
      li.append(dot, n)
      if (clientID === doc.clientID) {
        li.classList.add('me')
        li.append(' (you)')
      }
      return li
    }))
    $('count').textContent = String(states.length)
  }
  provider.awareness.on('change', renderPeople)

  const editor = new Editor({
    element: $('editor'),
    extensions: [
      // Collaboration brings its own undo history (Yjs' UndoManager). The
      // trailing-node helper (an empty paragraph kept after a last heading,
      // list or code block) is off: each tab would append its own, and the
      // shared document would collect empty paragraphs.
      StarterKit.configure({ undoRedo: false, trailingNode: false }),
      Collaboration.configure({ document: doc, field: 'default' }),
      // Sets this tab's `user` in the awareness and draws the others' carets.
      CollaborationCaret.configure({ provider, user: { name: user.name, color: user.color } })
    ],
    editorProps: { attributes: { class: 'prose', spellcheck: 'false', 'aria-label': 'shared document' } },
    autofocus: 'end'
  })
  renderPeople()

  // The toolbar: a few marks and blocks, each button lit while active.
  const buttons = [
    ['bold', 'B', (c) => c.toggleBold(), (e) => e.isActive('bold')],
    ['italic', 'I', (c) => c.toggleItalic(), (e) => e.isActive('italic')],
    ['strike', 'S', (c) => c.toggleStrike(), (e) => e.isActive('strike')],
    ['code', '</>', (c) => c.toggleCode(), (e) => e.isActive('code')],
    ['h1', 'H1', (c) => c.toggleHeading({ level: 1 }), (e) => e.isActive('heading', { level: 1 })],
    ['h2', 'H2', (c) => c.toggleHeading({ level: 2 }), (e) => e.isActive('heading', { level: 2 })],
    ['bullets', '• List', (c) => c.toggleBulletList(), (e) => e.isActive('bulletList')],
    ['numbers', '1. List', (c) => c.toggleOrderedList(), (e) => e.isActive('orderedList')],
    ['quote', '❝', (c) => c.toggleBlockquote(), (e) => e.isActive('blockquote')],
    ['codeblock', '{ }', (c) => c.toggleCodeBlock(), (e) => e.isActive('codeBlock')],
    ['undo', '↶', (c) => c.undo(), () => false],
    ['redo', '↷', (c) => c.redo(), () => false]
  ].map(([id, label, run, active]) => {
    const b = document.createElement('button')
    b.type = 'button'
    b.dataset.action = id
    b.textContent = label
    b.title = id
    b.addEventListener('mousedown', (e) => e.preventDefault()) // keep the editor's selection
    b.addEventListener('click', () => run(editor.chain().focus()).run())
    return { b, active }
  })
  $('toolbar').replaceChildren(...buttons.map(({ b }) => b))
  const renderToolbar = () => buttons.forEach(({ b, active }) => b.classList.toggle('on', active(editor)))
  editor.on('transaction', renderToolbar)
  renderToolbar()

  // Renaming updates this tab's presence (and caret label) for everyone.
  const nameInput = $('name')
  nameInput.value = user.name
  nameInput.addEventListener('input', () => {
    const n = nameInput.value.trim()
    if (!n) return
    user.name = n
    saveUser(user)
    editor.commands.updateUser({ name: user.name, color: user.color })
  })

  // Another document in the fragment: start over with that document.
  window.addEventListener('hashchange', () => location.reload())

  // For the console (and the browser tests): the live objects.
  window.wiredb = { doc, provider, editor, name, user, fragment: doc.getXmlFragment('default') }
}

start()
