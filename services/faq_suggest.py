"""Learning from the desk: routed questions staff answered, grouped into draft FAQ entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from services.faq_index import FaqIndex, Verdict

# Two questions belong together when they share this share of their index terms (Jaccard).
SIMILARITY = 0.5


@dataclass(frozen=True)
class Answered:
    question_id: int
    question: str
    answer: str


@dataclass
class Suggestion:
    """Similar questions the FAQ did not answer directly, with what staff replied."""

    terms: frozenset[str]
    pairs: list[Answered] = field(default_factory=list)
    nearest: str | None = None
    verdict: Verdict = Verdict.ROUTE

    def draft(self) -> dict[str, object]:
        """A data/faq.yaml entry to review, complete and `bangdaiban faq import`."""
        first = self.pairs[0]
        return {
            "key": f"desk_{first.question_id}",
            "question": first.question,
            "phrasings": [],
            "similar": [pair.question for pair in self.pairs[1:]],
            "answer": first.answer,
            "department": None,
        }


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def suggest(
    index: FaqIndex, answered: Sequence[Answered], similarity: float = SIMILARITY
) -> list[Suggestion]:
    """Groups of staff-answered questions the FAQ misses, largest group first."""
    groups: list[Suggestion] = []
    for pair in answered:
        decision = index.decide(pair.question)
        if decision.verdict is Verdict.ANSWER:
            continue  # already answered directly: nothing to learn
        terms = frozenset(index.query_terms(pair.question))
        if not terms:
            continue
        group = next((g for g in groups if _similarity(g.terms, terms) >= similarity), None)
        if group is None:
            nearest = decision.hits[0].key if decision.hits else None
            group = Suggestion(terms, nearest=nearest, verdict=decision.verdict)
            groups.append(group)
        group.pairs.append(pair)
    return sorted(groups, key=lambda g: -len(g.pairs))


def format_suggestions(groups: Sequence[Suggestion]) -> str:
    """Draft entries as YAML, each group introduced by a comment saying why it is listed."""
    chunks = []
    for group in groups:
        comment = (
            f"# {len(group.pairs)} question(s) staff answered; the FAQ said {group.verdict.value}"
            f" (nearest entry: {group.nearest or '-'})"
        )
        body = yaml.safe_dump([group.draft()], allow_unicode=True, sort_keys=False)
        chunks.append(f"{comment}\n{body}")
    return "\n".join(chunks)
