"""How well the FAQ answers labelled questions, and the thresholds measured on the dev split.

The labelled questions live in tests/data/faq_questions/{train,dev,test}.yaml: tune on train
and dev, calibrate on both together, report on test. Dev alone (about 150 questions) proved too
small: thresholds picked on it swung with every retrieval change and let through three times
the wrong answers on train. `bangdaiban faq report` runs `calibrate` and `evaluate` and writes
the thresholds to data/faq_calibration.yaml, where `FaqIndex.build` reads them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.faq_index import (
    DEFAULT_CALIBRATION_PATH,
    Calibration,
    Decision,
    FaqHit,
    FaqIndex,
    Verdict,
)

DEFAULT_SPLITS = Path(__file__).resolve().parent.parent / "tests" / "data" / "faq_questions"
OUT_OF_SCOPE = "none"
# Answer directly only where the tuning splits show at least this precision. They are small and
# the FAQ's phrasings were written while looking at them, so the bound used is the one-sided 95 %
# Wilson lower bound of the measurement.
TARGET_PRECISION = 0.97
PRECISION_Z = 1.645
# A question whose right entry stays offered counts this many out-of-scope ones routed.
REACH_WEIGHT = 3
RUNNER_UP_RATIOS = tuple(round(0.5 + 0.05 * step, 2) for step in range(11))


def read_split(path: Path) -> list[tuple[str, str]]:
    """(question, expected key) pairs of one split file."""
    rows: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [(str(row["q"]), str(row["key"])) for row in rows]


@dataclass(frozen=True)
class Observation:
    """One labelled question and what the index found, before any threshold applies."""

    question: str
    expected: str
    unit: FaqHit | None
    hits: tuple[FaqHit, ...]


def observe(index: FaqIndex, labelled: Sequence[tuple[str, str]]) -> list[Observation]:
    return [
        Observation(q, key, index.unit_question(q), tuple(index.search(q, limit=3)))
        for q, key in labelled
    ]


@dataclass
class Outcome:
    """Shares of a split: answered directly (right, wrong), offered a choice, routed."""

    questions: int = 0
    in_scope: int = 0
    direct_right: int = 0
    direct_wrong: int = 0
    rest: int = 0
    rest_right_offered: int = 0
    out_of_scope: int = 0
    out_of_scope_routed: int = 0
    misses: list[tuple[str, str, str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def direct_right_share(self) -> float:
        return _share(self.direct_right, self.in_scope)

    @property
    def direct_wrong_share(self) -> float:
        return _share(self.direct_wrong, self.questions)

    @property
    def choice_right_share(self) -> float:
        return _share(self.rest_right_offered, self.rest)

    @property
    def precision(self) -> float:
        return _share(self.direct_right, self.direct_right + self.direct_wrong)

    @property
    def precision_lower_bound(self) -> float:
        """Wilson lower bound of the direct answers' precision, PRECISION_Z errors below."""
        answered = self.direct_right + self.direct_wrong
        if not answered:
            return 0.0
        p, z2 = self.direct_right / answered, PRECISION_Z**2
        spread = PRECISION_Z * math.sqrt(p * (1 - p) / answered + z2 / (4 * answered**2))
        return (p + z2 / (2 * answered) - spread) / (1 + z2 / answered)

    def format(self, name: str, misses: bool = False) -> str:
        lines = [
            f"{name}: {self.questions} questions, {self.in_scope} in scope",
            f"  answered directly and correctly  {self.direct_right_share:6.1%}"
            f"  ({self.direct_right}/{self.in_scope} in scope)",
            f"  answered directly and wrongly    {self.direct_wrong_share:6.1%}"
            f"  ({self.direct_wrong}/{self.questions})",
            f"  right entry offered in the rest  {self.choice_right_share:6.1%}"
            f"  ({self.rest_right_offered}/{self.rest})",
            f"  out of scope routed to a person  "
            f"{_share(self.out_of_scope_routed, self.out_of_scope):6.1%}"
            f"  ({self.out_of_scope_routed}/{self.out_of_scope})",
        ]
        if misses:
            for question, expected, verdict, got in self.misses:
                lines.append(
                    f"  {verdict:6} {question!r}: expected {expected}, got {', '.join(got)}"
                )
        return "\n".join(lines)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def evaluate(
    index: FaqIndex, observations: Sequence[Observation], thresholds: Calibration
) -> Outcome:
    """What people would see for each question under `thresholds`."""
    outcome = Outcome()
    for seen in observations:
        if seen.unit is not None:
            decision = Decision(Verdict.ANSWER, (seen.unit,))
        else:
            decision = index.judge(seen.hits, thresholds)
        verdict = decision.verdict
        keys = tuple(hit.key for hit in decision.hits)
        outcome.questions += 1
        answered = verdict is Verdict.ANSWER
        if seen.expected == OUT_OF_SCOPE:
            outcome.out_of_scope += 1
            outcome.direct_wrong += answered
            outcome.out_of_scope_routed += verdict is Verdict.ROUTE
            fine = verdict is Verdict.ROUTE
        elif answered:
            outcome.in_scope += 1
            fine = keys[:1] == (seen.expected,)
            outcome.direct_right += fine
            outcome.direct_wrong += not fine
        else:
            outcome.in_scope += 1
            outcome.rest += 1
            outcome.rest_right_offered += verdict is Verdict.CHOOSE and seen.expected in keys
            fine = False  # a tap or a person where a direct answer was due: worth tuning
        if not fine:
            outcome.misses.append((seen.question, seen.expected, verdict.value, keys))
    return outcome


def calibrate(index: FaqIndex, observations: Sequence[Observation]) -> Calibration:
    """Thresholds that answer as many questions as possible at ≥ TARGET_PRECISION."""
    tops = sorted({seen.hits[0].confidence for seen in observations if seen.hits}, reverse=True)
    floor = _route_floor(index, observations, tops)
    best: tuple[int, Calibration] | None = None
    for ratio in RUNNER_UP_RATIOS:
        for position, confidence in enumerate(tops):
            if confidence < floor:
                break
            lower = tops[position + 1] if position + 1 < len(tops) else floor
            threshold = max(floor, (confidence + lower) / 2)
            thresholds = Calibration(round(threshold, 4), ratio, floor)
            outcome = evaluate(index, observations, thresholds)
            if outcome.precision_lower_bound < TARGET_PRECISION:
                continue
            if best is None or outcome.direct_right > best[0]:
                best = (outcome.direct_right, thresholds)
    if best is None:
        return Calibration(1.01, RUNNER_UP_RATIOS[0], floor)  # nothing is safe to answer
    return best[1]


def _route_floor(
    index: FaqIndex, observations: Sequence[Observation], tops: Sequence[float]
) -> float:
    """The floor that keeps the most in-scope questions in reach and routes the most others.

    Losing the right entry costs more than a choice offered for an out-of-scope question (the
    person taps "none of these"), so a question kept in reach counts REACH_WEIGHT times.
    """
    candidates = [*tops, 0.0]
    best_score, best_floor = -1, 0.0
    for position, confidence in enumerate(candidates):
        lower = candidates[position + 1] if position + 1 < len(candidates) else 0.0
        floor = round((confidence + lower) / 2, 4) if confidence else 0.0
        reached = routed = 0
        for seen in observations:
            above = [hit.key for hit in seen.hits if hit.confidence >= floor]
            if seen.expected == OUT_OF_SCOPE:
                routed += not above
            else:
                reached += seen.unit is not None or seen.expected in above
        score = REACH_WEIGHT * reached + routed
        if score > best_score:
            best_score, best_floor = score, floor
    return best_floor


@dataclass(frozen=True)
class Report:
    calibration: Calibration
    tuning: Outcome
    dev: Outcome
    test: Outcome

    def format(self) -> str:
        thresholds = self.calibration
        return "\n".join(
            [
                f"calibrated on train + dev (precision ≥ {TARGET_PRECISION:.0%}, lower bound):"
                f" answer at confidence ≥ {thresholds.answer_confidence}"
                f" with runner-up ≤ {thresholds.runner_up_ratio} of the top score;"
                f" route below {thresholds.route_floor}",
                self.tuning.format("train + dev (calibration)"),
                self.dev.format("dev", misses=True),
                self.test.format("test (report)"),
            ]
        )


def report(index: FaqIndex, splits: Path = DEFAULT_SPLITS) -> Report:
    """Calibrate on the train and dev splits and measure the test split with those thresholds."""
    dev = observe(index, read_split(splits / "dev.yaml"))
    tuning = [*observe(index, read_split(splits / "train.yaml")), *dev]
    test = observe(index, read_split(splits / "test.yaml"))
    thresholds = calibrate(index, tuning)
    return Report(
        thresholds,
        evaluate(index, tuning, thresholds),
        evaluate(index, dev, thresholds),
        evaluate(index, test, thresholds),
    )


def write_calibration(result: Report, path: Path = DEFAULT_CALIBRATION_PATH) -> None:
    """Store the thresholds where `FaqIndex.build` reads them."""
    thresholds = result.calibration
    data = {
        "thresholds": {
            "answer_confidence": thresholds.answer_confidence,
            "runner_up_ratio": thresholds.runner_up_ratio,
            "route_floor": thresholds.route_floor,
        },
        "measured": {
            "date": dt.date.today().isoformat(),
            "tuning_questions": result.tuning.questions,
            "tuning_direct_precision": round(result.tuning.precision, 4),
            "tuning_direct_precision_lower_bound": round(result.tuning.precision_lower_bound, 4),
            "test_direct_right": round(result.test.direct_right_share, 4),
            "test_direct_wrong": round(result.test.direct_wrong_share, 4),
            "test_choice_right": round(result.test.choice_right_share, 4),
        },
    }
    header = (
        "# Written by `bangdaiban faq report` from the train and dev splits of\n"
        "# tests/data/faq_questions; the bot reads these thresholds.\n"
        "# Do not edit by hand: run the report again.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
