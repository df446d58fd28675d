// Package ydoc renders the content of a Yjs document, given as one v1 update, as JSON, and
// builds a document back from that JSON. The admin API renders a room with it
// (GET /wiredb/rooms/<key>), and so do `caddy wiredb inspect`, `export`, `import` and
// `compact`; the path that serves rooms does not use it.
//
// # Safety
//
// Every update is validated with yproto.ValidateUpdate first. It is then applied to a fresh
// y-crdt Doc through internal/ysafe (under recover; y-crdt is never called from here), and
// the Doc's content is copied out into plain values and rendered by this package. A panic
// in y-crdt becomes an error. All updates are applied in one transaction, so edits of
// existing XmlElements, which make y-crdt panic when they arrive as separate updates
// (docs/y-crdt.md, "XmlElement edits panic"), are harmless here.
//
// # Output
//
// Render produces one object per root type, keyed by the root's name:
//
//	{
//	  "title": {"type": "Text", "value": "Hello"},
//	  "rich":  {"type": "Text", "value": "Hi you", "delta": [{"insert": "Hi ", "attributes": {"bold": true}}, {"insert": "you"}]},
//	  "meta":  {"type": "Map", "value": {"author": "ada", "tags": ["a", "b"]}},
//	  "list":  {"type": "Array", "value": [1, "two", {"three": 3}]},
//	  "body":  {"type": "XmlFragment", "value": "<paragraph>Hi</paragraph>",
//	            "children": [{"type": "XmlElement", "nodeName": "paragraph", "attributes": {},
//	                          "children": [{"type": "XmlText", "delta": [{"insert": "Hi"}]}]}]},
//	  "gone":  {"type": "Empty", "value": null}
//	}
//
// "value" is always what Yjs' own toJSON() of that root returns, serialised as
// JSON.stringify does: a Text's string (without embeds), a Map's object, an Array's
// array, an XmlFragment's XML string (Yjs' toString(): attributes sorted, nothing escaped,
// formatting of XML text as nested tags). Nested shared types inside values render as their
// own toJSON() does (a nested Y.Map as an object, a nested Y.Text as its string). Beyond
// Yjs: a Text with formatting or embeds also has "delta" (Yjs' toDelta()); an XmlFragment
// also has "children", the same tree as JSON (XmlElement with nodeName, attributes and
// children; XmlText with its delta; XmlHook with hookName and value), which is what import
// reads. Where JSON.stringify has no good answer, ydoc chooses: binary (Uint8Array) renders
// as a base64 string, a bigint as a JSON number, a subdocument as {"guid": "..."}, NaN and
// infinities as null.
//
// # Root kinds
//
// A Yjs update does not say which kind of type a root is: Yjs learns that from the
// application's getText/getMap/... call. Render infers it from the root's content:
// text, format or embed items make a Text; XmlElement, XmlText or XmlHook children an
// XmlFragment; other sequence content an Array; keyed entries only a Map. Content that was
// deleted still counts where the update kept it. A root whose content was all deleted and
// collected leaves nothing to infer from and renders as {"type": "Empty", "value": null}.
// An Array of XML nodes renders as an XmlFragment, and a Text that holds only embedded
// shared types as an Array: their content cannot tell them apart.
package ydoc
