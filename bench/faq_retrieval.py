"""Top-1 and top-3 retrieval of new wordings: dev, train questions new to the FAQ, held-out
phrasings.

Run: python bench/faq_retrieval.py [--misses] [--test]
Only FAQ-entry questions count (not out-of-scope or catalog-unit ones). The test split is printed
only with --test, as aggregate figures: tune on the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.faq_report import (  # noqa: E402
    DEFAULT_SPLITS,
    OUT_OF_SCOPE,
    Observation,
    new_to,
    observe,
    observe_held_out,
    read_split,
    shipped_index,
)


def in_scope(observations: list[Observation]) -> list[Observation]:
    return [o for o in observations if o.expected != OUT_OF_SCOPE and ":" not in o.expected]


def line(name: str, observations: list[Observation], misses: bool) -> str:
    seen = in_scope(observations)
    top1 = sum(o.keys[:1] == (o.expected,) for o in seen)
    top3 = sum(o.expected in o.keys for o in seen)
    text = (
        f"{name:10} {len(seen):4}  top-1 {top1 / len(seen):6.1%} ({top1})"
        f"  top-3 {top3 / len(seen):6.1%} ({top3})"
    )
    if misses:
        for o in seen:
            if o.keys[:1] != (o.expected,):
                text += f"\n    {o.question!r}: {o.expected} <- {', '.join(o.keys)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--misses", action="store_true")
    parser.add_argument("--test", action="store_true", help="also the test split (aggregate)")
    args = parser.parse_args()
    index = shipped_index()
    train = observe(index, new_to(index, read_split(DEFAULT_SPLITS / "train.yaml")))
    dev = observe(index, new_to(index, read_split(DEFAULT_SPLITS / "dev.yaml")))
    held = observe_held_out(index)
    print(line("train", train, args.misses))
    print(line("dev", dev, args.misses))
    print(line("held-out", held, args.misses))
    if args.test:
        print(line("test", observe(index, read_split(DEFAULT_SPLITS / "test.yaml")), False))


if __name__ == "__main__":
    main()
