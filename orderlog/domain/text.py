"""Text that is safe to keep, to compare and to show.

Ids and texts arrive from systems nobody here controls. A control character (C0, DEL,
C1), a bidirectional override or a zero-width character in an id makes two ids that look
the same differ (`SO-1001` and `SO-1001\u200b`: stored, then never found), and in a
text it can repaint the terminal of whoever reads it (`\u001b[31m`). So the contract
refuses them on the way in, and everything printed is escaped on the way out, because
records stored before this rule, and files handed to the offline verifier, may hold them.

Lone surrogates (half of a UTF-16 pair, from a JSON escape such as `\ud800`) cannot be
written as UTF-8 at all; the JSON reader refuses them, and `escaped` shows them.
"""

from __future__ import annotations

import re
import unicodedata

UNSAFE_CLASS = (
    r"\x00-\x1f\x7f-\x9f"  # C0 controls, DEL, C1 controls
    r"\u061c\u180e"  # Arabic letter mark, Mongolian vowel separator
    r"\u200b-\u200f"  # zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    r"\u2028-\u202e"  # line and paragraph separators; bidirectional embeddings and overrides
    r"\u2060-\u206f"  # word joiner, invisible operators, bidirectional isolates, deprecated formats
    r"\ufeff\ufff9-\ufffb"  # zero-width no-break space (BOM), interlinear annotations
)
"""Characters no id or text may hold, as the body of a regular-expression class that both
Python's `re` and pydantic's Rust engine read the same way."""

_UNSAFE = re.compile(f"[{UNSAFE_CLASS}\ud800-\udfff]")


def unsafe_character(text: str) -> tuple[int, str] | None:
    """The first character of `text` that no id or text may hold, with its position."""
    found = _UNSAFE.search(text)
    return None if found is None else (found.start(), found.group())


def character_name(character: str) -> str:
    """`U+200B (ZERO WIDTH SPACE)`: what a person needs to find the character."""
    code = f"U+{ord(character):04X}"
    name = unicodedata.name(character, "")
    if not name:
        name = "lone surrogate" if 0xD800 <= ord(character) <= 0xDFFF else "control character"
    return f"{code} ({name.lower()})"


def escaped(text: str, *, keep_layout: bool = False) -> str:
    """`text` with every unsafe character written as `\\uXXXX`: safe for a terminal, a log
    line or a UTF-8 file, and still telling exactly what was there. `keep_layout` leaves
    newlines and tabs alone, for a whole document (a table, or JSON whose strings already
    escape them) rather than one value."""
    if _UNSAFE.search(text) is None:
        return text

    def escape(found: re.Match[str]) -> str:
        character = found.group()
        return character if keep_layout and character in "\n\t" else f"\\u{ord(character):04x}"

    return _UNSAFE.sub(escape, text)


def is_whole_number(text: str) -> bool:
    """ASCII digits only, at most 19 (a 64-bit integer: what Kafka, SQLite and PostgreSQL
    hold): `str.isdigit` also says yes to `²` and `①`, which `int()` refuses, and `int()`
    refuses more than 4,300 digits too."""
    return len(text) <= 19 and text.isascii() and text.isdigit()
