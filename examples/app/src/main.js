// A collaborative editor on a wiredb room: CodeMirror 6 bound to a Y.Text by
// y-codemirror.next, synced through the unmodified y-websocket provider.
//
// The room comes from the URL (/?room=notes or /#notes, default "demo"); the
// WebSocket goes to the same host, ws: for an http: page and wss: for https:,
// path /rooms/<room> (the `wiredb /rooms/*` route of examples/Caddyfile).

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { basicSetup } from 'codemirror'
import { EditorView, keymap, placeholder } from '@codemirror/view'
import { EditorState } from '@codemirror/state'

const DEFAULT_ROOM = 'demo'

/** The room name: ?room=..., else the #fragment, else DEFAULT_ROOM. */
export function roomFromLocation (loc) {
  const q = new URLSearchParams(loc.search).get('room')
  const h = decodeURIComponent(loc.hash.replace(/^#/, ''))
  const room = (q || h || DEFAULT_ROOM).trim().replace(/^\/+|\/+$/g, '')
  return room || DEFAULT_ROOM
}

/** ws://host/rooms or wss://host/rooms: y-websocket appends "/" + the room. */
export function serverUrlFromLocation (loc) {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/rooms`
}

// The room's path segments, each percent-encoded: "notes/42" stays a
// two-segment key, and a space or "#" in a name cannot break the URL.
const roomPath = (room) => room.split('/').map(encodeURIComponent).join('/')

// Colours of y-codemirror.next's demo: `color` for carets and names,
// `colorLight` (the same with alpha) for selections.
const COLORS = ['#30bced', '#6eeb83', '#ffbc42', '#ecd444', '#ee6352', '#9ac2c9', '#8acb88', '#1be7ff']
const ADJECTIVES = ['Quick', 'Calm', 'Bright', 'Brave', 'Clever', 'Gentle', 'Lucky', 'Witty']
const ANIMALS = ['Otter', 'Fox', 'Heron', 'Lynx', 'Panda', 'Robin', 'Seal', 'Wombat']
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)]

// Who this tab is: ?name= and ?color= win; otherwise a random name and colour
// kept for the tab's session (sessionStorage, so two tabs are two people).
function localUser (loc) {
  const params = new URLSearchParams(loc.search)
  let saved = null
  try { saved = JSON.parse(sessionStorage.getItem('wiredb-demo-user') || 'null') } catch {}
  const user = {
    name: params.get('name') || saved?.name || `${pick(ADJECTIVES)} ${pick(ANIMALS)}`,
    color: params.get('color') || saved?.color || pick(COLORS)
  }
  if (!/^#[0-9a-fA-F]{6}$/.test(user.color)) user.color = pick(COLORS)
  user.colorLight = user.color + '33'
  saveUser(user)
  return user
}

function saveUser (user) {
  try { sessionStorage.setItem('wiredb-demo-user', JSON.stringify({ name: user.name, color: user.color })) } catch {}
}

function start () {
  const room = roomFromLocation(location)
  const serverUrl = serverUrlFromLocation(location)
  const user = localUser(location)

  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, roomPath(room), doc)
  const ytext = doc.getText('codemirror')
  const undoManager = new Y.UndoManager(ytext)
  provider.awareness.setLocalStateField('user', user)

  const $ = (id) => document.getElementById(id)
  $('room').textContent = room
  $('ws-url').textContent = provider.url
  document.title = `${room} · WireDB for Caddy`

  // Connection status, straight from the provider's status events.
  const status = $('status')
  const showStatus = (s) => {
    status.textContent = s
    status.dataset.status = s
    document.body.dataset.status = s
  }
  showStatus(provider.wsconnected ? 'connected' : 'connecting')
  provider.on('status', ({ status: s }) => showStatus(s))
  provider.on('sync', (synced) => { document.body.dataset.synced = String(synced) })

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
      const name = document.createElement('span')
      name.className = 'name'
      name.textContent = String(st.user.name || 'Anonymous')
      li.append(dot, name)
      if (clientID === doc.clientID) {
        li.classList.add('me')
        li.append(' (you)')
      }
      return li
    }))
    $('count').textContent = String(states.length)
  }
  provider.awareness.on('change', renderPeople)
  renderPeople()

  // Renaming updates this tab's presence for everyone.
  const nameInput = $('name')
  nameInput.value = user.name
  nameInput.addEventListener('input', () => {
    const name = nameInput.value.trim()
    if (!name) return
    user.name = name
    saveUser(user)
    provider.awareness.setLocalStateField('user', { ...user })
  })

  const view = new EditorView({
    parent: $('editor'),
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        keymap.of(yUndoManagerKeymap),
        basicSetup,
        EditorView.lineWrapping,
        placeholder('Start typing: everyone in this room sees it live.'),
        yCollab(ytext, provider.awareness, { undoManager }),
        // y-codemirror.next shows a remote caret's name only on hover; show
        // it always, so everyone sees who is where.
        EditorView.theme({
          '.cm-ySelectionInfo': {
            opacity: 1,
            fontFamily: 'system-ui, sans-serif',
            fontWeight: '600',
            padding: '0 4px',
            borderRadius: '3px 3px 3px 0',
            top: '-1.25em'
          }
        })
      ]
    })
  })
  view.focus()

  // Another room in the fragment: start over in that room.
  window.addEventListener('hashchange', () => location.reload())

  // For the console (and the browser tests): the live objects.
  window.wiredb = { doc, provider, ytext, view, room, user }
}

start()
