"""Benchmark the FAQ index: build time and decide() latency at 1,000 entries, and accuracy.

Run: python bench/faq_bench.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.faq_domain import read_catalog  # noqa: E402
from services.faq_index import (  # noqa: E402
    FaqDoc,
    FaqIndex,
    Verdict,
    confusion_report,
    parse_faq_yaml,
)
from services.faq_report import DEFAULT_SPLITS, read_split  # noqa: E402
from services.faq_report import report as calibrated_report  # noqa: E402

ENTRIES = 1_000
QUERIES = 5_000
SEED = 20210528


def variants(docs: list[FaqDoc], total: int, rng: random.Random) -> list[FaqDoc]:
    """The real entries plus generated ones that recombine real wording, up to `total`."""
    pool = [text for doc in docs for text in (doc.question, *doc.phrasings)]
    result = list(docs)
    while len(result) < total:
        base = rng.choice(docs)
        texts = [rng.choice(pool) + rng.choice(pool)[:6] for _ in range(rng.randint(3, 6))]
        result.append(
            FaqDoc(
                key=f"{base.key}_v{len(result)}",
                question=base.question[:-1] + rng.choice(pool)[:4],
                phrasings=tuple(texts),
                department=base.department,
            )
        )
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_per_decide(index: FaqIndex, questions: list[str], repeats: int = 5) -> list[float]:
    """CPU milliseconds of each decide() call (this thread only: the machine is shared)."""
    costs: list[float] = []
    for _ in range(repeats):
        for question in questions:
            started = time.thread_time()
            index.decide(question)
            costs.append((time.thread_time() - started) * 1000)
    return costs


def main() -> None:
    rng = random.Random(SEED)
    docs, synonyms, _ = parse_faq_yaml((ROOT / "data" / "faq.yaml").read_text(encoding="utf-8"))
    paraphrases = yaml.safe_load(
        (ROOT / "tests" / "data" / "faq_paraphrases.yaml").read_text(encoding="utf-8")
    )
    labelled = [(str(item["q"]), str(item["key"])) for item in paraphrases["labelled"]]
    holdout = [
        (str(item["q"]), str(item["key"]))
        for item in paraphrases["labelled"]
        if item.get("holdout")
    ]

    started = time.perf_counter()
    FaqIndex.build(docs[:1], synonyms)  # the tokenizer of a one-entry FAQ
    tokenizer_seconds = time.perf_counter() - started

    big_docs = variants(docs, ENTRIES, rng)
    started = time.perf_counter()
    big = FaqIndex.build(big_docs, synonyms)
    build_seconds = time.perf_counter() - started
    phrasings = sum(1 + len(doc.phrasings) for doc in big_docs)
    print(f"jieba tokenizer initialisation (once per process): {tokenizer_seconds * 1000:.0f} ms")
    print(
        f"index build, {len(big_docs)} entries / {phrasings} phrasings: "
        f"{build_seconds * 1000:.0f} ms"
    )

    queries = [q for q, _ in labelled] + [str(t) for t in paraphrases["off_topic"]]
    queries = [rng.choice(queries) for _ in range(QUERIES)]
    for query in queries[:50]:
        big.decide(query)
    latencies: list[float] = []
    for query in queries:
        started = time.perf_counter()
        big.decide(query)
        latencies.append((time.perf_counter() - started) * 1000)
    print(
        f"decide() over {len(latencies)} queries: p50 {statistics.median(latencies):.3f} ms, "
        f"p99 {percentile(latencies, 0.99):.3f} ms, max {max(latencies):.3f} ms"
    )

    real = FaqIndex.build(docs, synonyms)
    report = confusion_report(real, labelled)
    print(f"real index ({len(docs)} entries), labelled set: {report.format()}")
    held = confusion_report(real, holdout)
    print(
        f"  of which holdout ({held.total}): top1 {held.top1_accuracy:.3f}, "
        f"top3 {held.top3_accuracy:.3f}"
    )
    verdicts = [(real.decide(q), key) for q, key in labelled]
    answered = [(d, key) for d, key in verdicts if d.verdict is Verdict.ANSWER]
    right = sum(d.hits[0].key == key for d, key in answered)
    counts = {v.value: sum(d.verdict is v for d, _ in verdicts) for v in Verdict}
    print(f"  verdicts {counts}; ANSWER precision {right}/{len(answered)}")
    off = [real.decide(str(t)).verdict.value for t in paraphrases["off_topic"]]
    print(f"  off-topic verdicts: { {v: off.count(v) for v in sorted(set(off))} }")

    items = read_catalog((ROOT / "data" / "items.yaml").read_text(encoding="utf-8"))
    answering = FaqIndex.build(docs, synonyms, items=items)
    tuning = [
        q for split in ("train", "dev") for q, _ in read_split(DEFAULT_SPLITS / f"{split}.yaml")
    ]
    for question in tuning:
        answering.decide(question)
    costs = cpu_per_decide(answering, tuning)
    print(
        f"CPU per decide() on the real FAQ ({len(tuning)} train and dev questions x5): "
        f"p50 {statistics.median(costs):.3f} ms, p99 {percentile(costs, 0.99):.3f} ms"
    )
    calibrated = calibrated_report(answering)
    print(calibrated.tuning.format("enterprise-worded train + dev (calibration)"))
    print(calibrated.held_out.format("FAQ phrasings held out of the index (calibration)"))
    print(calibrated.test.format("enterprise-worded test split, calibrated on the above"))


if __name__ == "__main__":
    main()
