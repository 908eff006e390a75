"""The JSON of stored records and of the HTTP API: strict JSON that keeps NaN and infinities.

JSON has no NaN or infinities (Python writes ``NaN`` tokens that browsers, ``jq`` and
PostgreSQL's ``jsonb`` refuse), and pydantic writes them as ``null`` by default, which loses
the value. Here a non-finite float is written as a one-key object::

    {"$float": "NaN"}   {"$float": "Infinity"}   {"$float": "-Infinity"}

and read back as the float. So that no value ever reads back as something else, a logged
dict whose only key is ``"$float"`` or ``"$dict"`` is wrapped as ``{"$dict": {...}}``.

Both directions cost one extra scan of the text only when such a value is present: writing
tries plain strict JSON first (it fails only on a non-finite float), reading decodes only text
that contains a tag. Reading also accepts the ``NaN`` tokens older records may hold.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

_TAGS = ("$float", "$dict")
_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def dumps(value: Any, **options: Any) -> str:
    """Return ``value`` as strict JSON text; non-finite floats become ``{"$float": ...}``.

    ``options`` go to :func:`json.dumps` (``indent``, ``separators``...); objects JSON does
    not know are written as their ``str``.
    """
    options.setdefault("default", str)
    try:
        text = json.dumps(value, allow_nan=False, **options)
    except ValueError:  # a NaN or an infinity somewhere
        return json.dumps(encode(value), allow_nan=False, **options)
    if '"$float"' in text or '"$dict"' in text:  # a logged dict that looks like a tag
        return json.dumps(encode(value), allow_nan=False, **options)
    return text


# id -> (a value never changed again, its JSON text): encoded once, spliced into each record
_SHARED: dict[int, tuple[Any, str]] = {}
_SHARED_MAX = 16  # the newest ones (a process runs few pipelines at a time)
_SHARED_LOCK = threading.Lock()


def share(value: Any) -> Any:
    """Mark ``value`` (a JSON-safe value nobody changes again) as shared; return it.

    :func:`dumps_run` then writes a run whose ``spec.graph`` is this very object with the text
    encoded here once (a pipeline run's graph is large and written at every commit).
    """
    text = dumps(value)
    with _SHARED_LOCK:
        while len(_SHARED) >= _SHARED_MAX:
            del _SHARED[next(iter(_SHARED))]
        _SHARED[id(value)] = (value, text)
    return value


def dumps_run(run: dict[str, Any]) -> str:
    """Return :func:`dumps` of a run record: the same text, its shared graph not encoded again.

    The graph (``spec.graph``) is spliced in as :func:`share` encoded it, when it is that object.
    """
    spec = run.get("spec")
    graph = spec.get("graph") if isinstance(spec, dict) else None
    known = _SHARED.get(id(graph)) if graph is not None else None
    if known is None or known[0] is not graph:
        return dumps(run)
    assert isinstance(spec, dict)
    mark = f"\x00shared graph {id(graph)}\x00"
    text = dumps({**run, "spec": {**spec, "graph": mark}})
    return text.replace(json.dumps(mark), known[1], 1)


def loads(text: str | bytes) -> Any:
    """Return the value of JSON ``text`` written by :func:`dumps` (tags decoded)."""
    value = json.loads(text)
    if isinstance(text, bytes):
        tagged = b'"$float"' in text or b'"$dict"' in text
    else:
        tagged = '"$float"' in text or '"$dict"' in text
    return decode(value) if tagged else value


def encode(value: Any) -> Any:
    """Return ``value`` with non-finite floats (and tag-like dicts) in their tagged form."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return {"$float": name}
    if isinstance(value, dict):
        out = {k: encode(v) for k, v in value.items()}
        return {"$dict": out} if len(value) == 1 and next(iter(value)) in _TAGS else out
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """Undo :func:`encode`."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$float" and isinstance(inner, str) and inner in _NAMES:
                return _NAMES[inner]
            if key == "$dict" and isinstance(inner, dict):
                return {k: decode(v) for k, v in inner.items()}
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
