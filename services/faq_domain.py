"""The approval domain's vocabulary for FAQ matching: script, typos, abbreviations, units.

data/faq_dictionary.yaml is reviewed by the window staff; this module only applies it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import opencc
import yaml

DEFAULT_DICTIONARY_PATH = Path(__file__).resolve().parent.parent / "data" / "faq_dictionary.yaml"
UNIT_KEY_PREFIX = "unit:"


@cache
def _traditional_to_simplified() -> Any:
    return opencc.OpenCC("t2s")


class Words(Protocol):
    def __call__(self, text: str, *, subwords: bool = False) -> list[str]: ...


@dataclass(frozen=True)
class CatalogItem:
    """An approval item of data/items.yaml and the unit responsible for it."""

    code: str
    name: str
    unit: str | None


@dataclass(frozen=True)
class Dictionary:
    """Corrections (typo or homophone → term), extra synonym groups, the unit-question words."""

    corrections: Mapping[str, str] = field(default_factory=dict)
    synonyms: Sequence[Sequence[str]] = ()
    contact_terms: Sequence[str] = ()
    item_aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)
    intents: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_DICTIONARY_PATH) -> Dictionary:
        """Read the dictionary file; a missing file is an empty dictionary."""
        if not path.exists():
            return cls()
        return cls.parse(path.read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> Dictionary:
        data: Any = yaml.safe_load(text) or {}
        return cls(
            corrections={str(k): str(v) for k, v in (data.get("corrections") or {}).items()},
            synonyms=[[str(t) for t in group] for group in data.get("synonyms") or ()],
            contact_terms=[str(t) for t in data.get("contact_terms") or ()],
            item_aliases={
                str(code): [str(a) for a in aliases]
                for code, aliases in (data.get("items") or {}).items()
            },
            intents={
                str(name): [str(c) for c in cues]
                for name, cues in (data.get("intents") or {}).items()
            },
        )


class Normaliser:
    """Width, case, traditional → simplified script, then the reviewed corrections."""

    def __init__(self, corrections: Mapping[str, str]) -> None:
        self._corrections = {self._script(k): self._script(v) for k, v in corrections.items()}
        ordered = sorted(self._corrections, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @staticmethod
    def _script(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower().strip()
        return str(_traditional_to_simplified().convert(text))

    def __call__(self, text: str) -> str:
        text = self._script(text)
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._corrections[m.group(0)], text)


class UnitQuestions:
    """Recognises "which unit / whom / which phone" questions about one catalog item."""

    def __init__(self, items: Iterable[CatalogItem], dictionary: Dictionary, words: Words) -> None:
        self.items = {item.code: item for item in items if item.unit}
        self._contact = {term for word in dictionary.contact_terms for term in words(word)}
        self._aliases: list[tuple[str, frozenset[str], int]] = []
        for code, aliases in dictionary.item_aliases.items():
            if code not in self.items:
                continue
            for alias in (self.items[code].name, *aliases):
                terms = frozenset(words(alias))
                if terms:
                    self._aliases.append((code, terms, len(alias)))

    def match(self, terms: Iterable[str]) -> str | None:
        """The item code a unit question is about, or None if not one or ambiguous."""
        present = set(terms)
        if not present & self._contact:
            return None
        best: dict[str, int] = {}
        for code, alias, size in self._aliases:
            if alias <= present:
                best[code] = max(best.get(code, 0), size)
        if not best:
            return None
        ranked = sorted(best.items(), key=lambda pair: -pair[1])
        if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
            return None
        return ranked[0][0]


def unit_key(code: str) -> str:
    return f"{UNIT_KEY_PREFIX}{code}"


def item_code(key: str) -> str | None:
    """The catalog item of a unit key, or None for an FAQ entry key."""
    return key.removeprefix(UNIT_KEY_PREFIX) if key.startswith(UNIT_KEY_PREFIX) else None


def read_catalog(text: str) -> list[CatalogItem]:
    """Catalog items from data/items.yaml text."""
    data: Any = yaml.safe_load(text) or {}
    return [
        CatalogItem(str(i["code"]), str(i["name"]), i.get("unit")) for i in data.get("items") or ()
    ]
