"""The one cleaning every text goes through when it enters the core."""

from __future__ import annotations

import re
import unicodedata

# Shown as nothing (or reordering what follows) yet kept by a copy-paste: controls (NUL
# included), format characters (zero-width, bidi overrides, BOM, soft hyphen), lone
# surrogates, unassigned code points, and letters that render blank.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Hidden(dict[int, int | None]):
    """A str.translate table that drops hidden characters, filled as characters are met."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        hidden = char not in "\n\t" and (
            unicodedata.category(char) in _HIDDEN_CATEGORIES or char in _BLANK_LETTERS
        )
        self[code] = None if hidden else code
        return self[code]


_HIDDEN = _Hidden()


def clean(text: str, *, fold: bool = False, single_line: bool = False) -> str:
    """Text as stored and shown: hidden and control characters gone, spaces tidied.

    `fold` applies NFKC (full-width letters, digits and brackets become their ASCII forms)
    for names and codes that must compare equal however they were typed; prose keeps its
    Chinese punctuation (NFC only). `single_line` turns line breaks into spaces.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = unicodedata.normalize("NFKC" if fold else "NFC", text)
    # The common case skips the per-character pass; blank letters (ㅤ) count as printable.
    if not text.isprintable() or not _BLANK_LETTERS.isdisjoint(text):
        text = text.translate(_HIDDEN)
    if single_line:
        text = text.replace("\n", " ")
    text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
    return text.strip()


def clean_data(data: str) -> str:
    """Button payloads and file names: hidden characters and line breaks removed."""
    return data.translate(_HIDDEN).replace("\n", "").replace("\t", "")
