"""Fit the ranking weights (FaqIndex.RANK_WEIGHTS) on new wordings; print them and their figures.

Run: python bench/faq_rank_fit.py
Learning to rank, listwise: the chance of each entry is a softmax of the weighted SIGNALS and
the fit maximises that of the right entry, with non-negative weights (projected gradient) and a
small ridge. The examples are every FAQ phrasing asked of an index built without its fold
(services.faq_report.observe_held_out's folds) and the train questions not in the FAQ. Five-fold
cross-validation over the held-out folds, then dev, say how the fitted weights do on wordings
the fit has not seen. The test split is not read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.faq_index import RANK_SHARPNESS, SIGNALS, FaqIndex  # noqa: E402
from services.faq_report import (  # noqa: E402
    DEFAULT_SPLITS,
    HELD_OUT_FOLDS,
    OUT_OF_SCOPE,
    new_to,
    read_split,
    shipped_index,
)

RIDGE = 0.01
STEPS = 3000
RATE = 0.5
SHARPNESS = RANK_SHARPNESS  # softmax temperature: scores differ by tenths between near entries

Example = tuple[np.ndarray, int]  # SIGNALS × entries, the right entry's position


def examples(index: FaqIndex, labelled: list[tuple[str, str]]) -> list[Example]:
    position = {doc.key: n for n, doc in enumerate(index.docs)}
    found: list[Example] = []
    for question, key in labelled:
        if key == OUT_OF_SCOPE or key not in position or index.unit_question(question):
            continue
        signals = index.signals(question)
        if signals is not None:
            found.append((signals, position[key]))
    return found


def fit(data: list[Example], start: np.ndarray) -> np.ndarray:
    signals = np.stack([s for s, _ in data])  # examples × SIGNALS × entries
    rows = np.arange(len(data))
    right = signals[rows, :, [r for _, r in data]]  # examples × SIGNALS
    weights = start.copy()
    for _ in range(STEPS):
        scores = SHARPNESS * np.einsum("s,nse->ne", weights, signals)
        chance = np.exp(scores - scores.max(axis=1, keepdims=True))
        chance /= chance.sum(axis=1, keepdims=True)
        expected = np.einsum("nse,ne->s", signals, chance)
        gradient = RIDGE * weights + SHARPNESS * (expected - right.sum(axis=0)) / len(data)
        weights = np.maximum(weights - RATE * gradient, 0.0)
    return weights


def accuracy(data: list[Example], weights: np.ndarray) -> tuple[float, float]:
    top1 = top3 = 0
    for signals, right in data:
        order = np.argsort(-(weights @ signals), kind="stable")
        top1 += int(order[0] == right)
        top3 += int(right in order[:3])
    return round(top1 / len(data), 3), round(top3 / len(data), 3)


def main() -> None:
    index = shipped_index()
    folds = []
    for fold in range(HELD_OUT_FOLDS):
        smaller, held = index.held_out(fold, HELD_OUT_FOLDS)
        folds.append(examples(smaller, held))
    train = examples(index, new_to(index, read_split(DEFAULT_SPLITS / "train.yaml")))
    dev = examples(index, new_to(index, read_split(DEFAULT_SPLITS / "dev.yaml")))
    current = np.asarray([FaqIndex.RANK_WEIGHTS[name] for name in SIGNALS])
    every = [e for fold in folds for e in fold]
    print(
        f"current weights: held-out top-1/top-3 {accuracy(every, current)},"
        f" dev {accuracy(dev, current)}"
    )
    crossed = []
    for fold in range(HELD_OUT_FOLDS):
        rest = [e for n, f in enumerate(folds) if n != fold for e in f] + train
        weights = fit(rest, current)
        crossed.extend((s, r, weights) for s, r in folds[fold])
    top1 = np.mean([np.argsort(-(w @ s), kind="stable")[0] == r for s, r, w in crossed])
    top3 = np.mean([r in np.argsort(-(w @ s), kind="stable")[:3] for s, r, w in crossed])
    print(f"cross-validated over the held-out folds: top-1 {top1:.3f}, top-3 {top3:.3f}")
    weights = fit(every + train, current)
    weights *= 2.5 / weights.sum()  # the scale is free: keep the old ceiling
    print(f"fitted: held-out {accuracy(every, weights)}, dev {accuracy(dev, weights)}")
    for name, weight in zip(SIGNALS, weights, strict=True):
        print(f'        "{name}": {weight:.2f},')


if __name__ == "__main__":
    main()
