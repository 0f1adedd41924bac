"""The wire between `ParseSandbox` (kb.parsing.sandbox) and the parse helper process (kb.parsing.helper).

Each message is a length-prefixed pickle. The caller sends a `Request`; the helper answers with tuples:
`("error", reason)`, or `("info", pages, title, element count, date)`, then `("batch", [Element, ...])` pieces bounded
in count and characters, then `("end",)`. Both sides import this module, so a request unpickles to the
same class in either process.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from kb.records import Element

BATCH_ELEMENTS = 1000  # elements per piece the helper sends ...
BATCH_CHARS = 1 << 20  # ... and characters of text (one longer element travels alone)
MAX_MESSAGE_BYTES = 1 << 31  # a length prefix above this is garbage from a dying helper, not a message
LENGTH_BYTES = 8


@dataclass(frozen=True)
class Request:
    """One file for the helper to parse, and how big the pieces of its answer may be."""

    path: str
    filename: str | None
    max_bytes: int | None
    batch_elements: int = BATCH_ELEMENTS
    batch_chars: int = BATCH_CHARS


def write_message(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(LENGTH_BYTES, "big"))
    stream.write(data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message, blocking (the helper's side); EOFError when the caller closed the pipe."""
    head = stream.read(LENGTH_BYTES)
    if len(head) < LENGTH_BYTES:
        raise EOFError
    return pickle.loads(stream.read(int.from_bytes(head, "big")))


def batches(elements: Iterable[Element], max_elements: int, max_chars: int) -> Iterator[list[Element]]:
    """Consecutive elements, at most `max_elements` and about `max_chars` characters of text per batch."""
    batch: list[Element] = []
    chars = 0
    for element in elements:
        if batch and (len(batch) >= max_elements or chars + len(element.text) > max_chars):
            yield batch
            batch, chars = [], 0
        batch.append(element)
        chars += len(element.text)
    if batch:
        yield batch
