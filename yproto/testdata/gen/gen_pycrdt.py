"""Generates updates and messages written by pycrdt (Yrs, the Rust port of Yjs).

WireDB's own Python clients use pycrdt, so the validator must accept what Yrs writes, not
only what Yjs writes. Run before gen.mjs, which reads ../vectors/pycrdt_raw.json, proves
that Yjs applies every update, records what Yjs reports about it, and writes the result
into ../vectors/yjs.json under names starting with "pycrdt_":

    python3 -m venv .venv && .venv/bin/pip install pycrdt==0.14.13
    .venv/bin/python gen_pycrdt.py && node gen.mjs

Unlike gen.mjs, the output is not byte-for-byte reproducible: Yrs writes the keys of a
subdocument's options in hash-map order, so re-running may reorder them.
"""

import json
from pathlib import Path

import pycrdt
from pycrdt import Array, Awareness, Doc, Map, Text, XmlElement, XmlFragment, XmlText

OUT = Path(__file__).resolve().parent.parent / "vectors" / "pycrdt_raw.json"

updates = []
messages = []


def record(doc):
    """Collects every update that a transaction on doc emits."""
    got = []
    doc.observe(lambda event: got.append(bytes(event.update)))
    return got


def add(name, update):
    updates.append({"name": "pycrdt_" + name, "hex": bytes(update).hex()})


# Text with formatting, embeds and deletes, from a client id above 2^32.
doc = Doc(client_id=2**40 + 11)
got = record(doc)
doc["text"] = text = Text()
text.insert(0, "Hello 😀 world")
text.insert(5, " bold", {"bold": True})
text.format(0, 3, {"color": "#00ff00"})
text.insert_embed(2, {"image": "x.png"})
del text[0:2]
for i, u in enumerate(got):
    add(f"text_step{i}", u)
add("text_state", doc.get_update())

# Map with the values Yrs can hold, nested types and a subdocument.
doc = Doc(client_id=123)
got = record(doc)
doc["map"] = m = Map()
with doc.transaction():
    m["int"] = 42
    m["big"] = 2**40
    m["neg"] = -7
    m["float"] = 0.1
    m["true"] = True
    m["none"] = None
    m["str"] = "strïng"
    m["list"] = [1, "two", [3.5, None], {"k": False}]
    m["dict"] = {"a": {"b": {"c": [1, 2, 3]}}}
    m["bytes"] = b"\x00\x01\xff"
with doc.transaction():
    m["nested"] = nested = Map()
    nested["arr"] = Array([1, 2, Text("inner")])
    m["sub"] = Doc(guid="subdoc-guid")
m["int"] = 43
del m["none"]
for i, u in enumerate(got):
    add(f"map_step{i}", u)
add("map_state", doc.get_update())

# Arrays and XML.
doc = Doc(client_id=2**31 + 1)
got = record(doc)
doc["arr"] = arr = Array([1, 2, 3])
arr.insert(1, "x")
del arr[0:2]
doc["xml"] = frag = XmlFragment()
frag.children.append(XmlElement("p", {"class": "c"}, [XmlText("para")]))
frag.children[0].attributes["class"] = "d"
frag.children.append(XmlText("tail"))
for i, u in enumerate(got):
    add(f"arr_xml_step{i}", u)
add("arr_xml_state", doc.get_update())

# Two clients, merged.
a = Doc(client_id=1)
b = Doc(client_id=2)
ga = record(a)
gb = record(b)
a["t"] = ta = Text()
ta += "abc"
b.apply_update(a.get_update())
b["t"] = tb = Text()
tb += "def"
ta += "ghi"
add("merged", pycrdt.merge_updates(*ga, *gb))

# Messages as pycrdt writes them (y-websocket framing).
messages.append({"name": "pycrdt_sync_step1", "hex": pycrdt.create_sync_message(a).hex()})
messages.append({"name": "pycrdt_update", "hex": pycrdt.create_update_message(ga[0]).hex()})
aw = Awareness(a)
aw.set_local_state({"user": {"name": "py"}})
aw_update = aw.encode_awareness_update([a.client_id])
messages.append({"name": "pycrdt_awareness", "hex": pycrdt.create_awareness_message(aw_update).hex()})

OUT.write_text(json.dumps({"generator": "yproto/testdata/gen/gen_pycrdt.py", "pycrdt": "0.14.13",
                           "updates": updates, "messages": messages}, indent=1) + "\n")
print(f"wrote {len(updates)} updates and {len(messages)} messages to {OUT}")
