"""FAQ retrieval: jieba segmentation, synonym normalisation and BM25 ranking.

Pure Python, no I/O except reading the jieba user dictionary once. The bot loads the
knowledge base (data/faq.yaml) wherever it likes and hands the entries to `FaqIndex.build`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import jieba
import numpy as np
import yaml
from rank_bm25 import BM25Okapi

from services.faq_domain import CatalogItem, Dictionary, Normaliser, UnitQuestions, unit_key

DEFAULT_TERMS_PATH = Path(__file__).resolve().parent.parent / "data" / "faq_terms.txt"
DEFAULT_CALIBRATION_PATH = Path(__file__).resolve().parent.parent / "data" / "faq_calibration.yaml"

# Function words, fillers and greetings: they say nothing about which entry is meant.
_STOP_WORDS_TEXT = """
的 了 吗 呢 吧 啊 呀 哦 嘛 么 着 过 和 与 及 或 跟 也 都 就 还 又 再 才 很 太 挺 更 最 地 该
我 我们 你 你们 您 您们 他 她 它 他们 咱 咱们 自己 大家 这 那 这个 那个 这些 那些 这边 那边
这里 那里 这样 那样 这种 那种 一下 一个 一些 有点 有些 什么 怎么 怎么样 怎样 如何 为什么
是 是不是 有没有 有 没有 在 要 要不要 想 想要 会 会不会 能 能不能 可以 可不可以 可否 需要
需不需要 用不用 得 应该 是否 请 请问 问 问下 问一下 咨询一下 麻烦 谢谢 多谢 感谢 你好 您好
hello hi 在吗 好 好的 嗯 哈 哈哈 哈哈哈 哎 喂 然后 但是 不过 所以 因为 如果 的话 现在 目前
已经 一直 之前 之后 给 把 被 让 对 对于 关于 为 为了 从 到 向 去 来 上 里 中 个 些 呗 哪 啥
咋 怎 嘞 啦 下子 一般 具体 大概 比如 例如 等 等等 之类 方面 情况 问题 事情 东西 那么 这么
只 就是 其实 不 下 用 到底 行不行 老是
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_WORD_RE = re.compile(r"\w", re.UNICODE)
_CJK_RE = re.compile(r"^[\u4e00-\u9fff]+$")

_tokenizer_lock = threading.Lock()
_tokenizers: dict[Path, jieba.Tokenizer] = {}


def _tokenizer(terms_path: Path) -> jieba.Tokenizer:
    """Return the private jieba tokenizer for this dictionary, initialising it on first use."""
    with _tokenizer_lock:
        tokenizer = _tokenizers.get(terms_path)
        if tokenizer is None:
            jieba.setLogLevel(logging.WARNING)  # its own handler prints DEBUG lines otherwise
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            if terms_path.exists():
                tokenizer.load_userdict(str(terms_path))
            _tokenizers[terms_path] = tokenizer
        return tokenizer


@dataclass(frozen=True)
class FaqDoc:
    key: str
    question: str
    phrasings: tuple[str, ...]
    department: str | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaqHit:
    key: str
    score: float
    confidence: float


class Verdict(StrEnum):
    ANSWER = "answer"
    CHOOSE = "choose"
    ROUTE = "route"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    hits: tuple[FaqHit, ...]


@dataclass(frozen=True)
class Calibration:
    """Decision thresholds measured by `bangdaiban faq report` on the train and dev splits."""

    answer_confidence: float
    runner_up_ratio: float
    route_floor: float

    @classmethod
    def load(cls, path: Path = DEFAULT_CALIBRATION_PATH) -> Calibration | None:
        """The stored thresholds, or None where the report has not written any."""
        if not path.exists():
            return None
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        thresholds = data.get("thresholds") or {}
        return cls(
            float(thresholds["answer_confidence"]),
            float(thresholds["runner_up_ratio"]),
            float(thresholds["route_floor"]),
        )


class Analyzer:
    """Turns text into normalised index terms: segment, drop noise, map synonyms."""

    def __init__(
        self,
        tokenizer: jieba.Tokenizer,
        synonyms: Sequence[Sequence[str]],
        normalise: Normaliser | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self.normalise = normalise or Normaliser({})
        self.canonical: dict[str, str] = {}
        for group in synonyms:
            terms = [self.normalise(term) for term in group if term.strip()]
            if not terms:
                continue
            for term in terms:
                self.canonical.setdefault(term, terms[0])
                # Every synonym must survive segmentation as one token to be mapped.
                if len(term) > 1 and tokenizer.FREQ.get(term, 0) == 0:
                    with _tokenizer_lock:
                        tokenizer.add_word(term, freq=20000)

    def words(self, text: str, *, subwords: bool = False) -> list[str]:
        """Segment `text` and return its meaningful, synonym-normalised words in order."""
        result: list[str] = []
        text = self.normalise(text)
        pieces = (
            self._tokenizer.cut_for_search(text, HMM=False)
            if subwords
            else self._tokenizer.cut(text, HMM=False)
        )
        for raw in pieces:
            word = raw.strip()
            if not word or not _WORD_RE.search(word) or word in STOP_WORDS:
                continue
            result.append(self.canonical.get(word, word))
        return result


@dataclass
class ConfusionReport:
    total: int
    top1: int
    top3: int
    misses: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def top1_accuracy(self) -> float:
        return self.top1 / self.total if self.total else 0.0

    @property
    def top3_accuracy(self) -> float:
        return self.top3 / self.total if self.total else 0.0

    def format(self) -> str:
        """Return a readable summary with one line per miss."""
        lines = [
            f"top1 {self.top1_accuracy:.3f} ({self.top1}/{self.total}), "
            f"top3 {self.top3_accuracy:.3f} ({self.top3}/{self.total})"
        ]
        for query, expected, got in self.misses:
            lines.append(f"  MISS {query!r}: expected {expected}, got {', '.join(got) or '-'}")
        return "\n".join(lines)


class _Field:
    """One BM25 index over term lists; each list belongs to an entry, which keeps its best.

    rank_bm25 computes the statistics (idf, lengths, term counts); since a term's BM25
    weight in a document does not depend on the query, the weights are laid out per term
    once, so a query costs a few vector additions instead of a pass over every document.
    """

    # Tuned on the train split (tests/data/faq_questions/train.yaml) with dev-calibrated thresholds.
    UNKNOWN_WEIGHT = 1.5

    def __init__(self, corpus: Sequence[list[str]], owners: Sequence[int], entries: int) -> None:
        self.bm25 = BM25Okapi(corpus)
        owner = np.asarray(owners, dtype=np.int64)
        if np.any(np.diff(owner) < 0):
            raise ValueError("documents must be grouped by entry")
        self.size = len(corpus)
        # A query term this field never uses weighs more than the rarest known one: such words
        # are mostly about something the FAQ does not cover, so they dilute whatever matched.
        self.unknown_idf = self.UNKNOWN_WEIGHT * float(max(self.bm25.idf.values()))
        k1, b = self.bm25.k1, self.bm25.b
        lengths = np.asarray(self.bm25.doc_len, dtype=np.float64)
        norm = k1 * (1 - b + b * lengths / self.bm25.avgdl)
        ids: dict[str, list[int]] = {}
        weights: dict[str, list[float]] = {}
        for doc_no, freqs in enumerate(self.bm25.doc_freqs):
            for term, tf in freqs.items():
                idf = float(self.bm25.idf[term])
                ids.setdefault(term, []).append(doc_no)
                weights.setdefault(term, []).append(idf * tf * (k1 + 1) / (tf + norm[doc_no]))
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {
            term: (np.asarray(ids[term], dtype=np.int64), np.asarray(weights[term])) for term in ids
        }
        self._starts = np.minimum(np.searchsorted(owner, np.arange(entries)), self.size - 1)
        self._has_docs = np.bincount(owner, minlength=entries) > 0

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query `terms`."""
        scores = np.zeros(self.size)
        for term in terms:
            posting = self.postings.get(term)
            if posting is not None:
                scores[posting[0]] += posting[1]
        return scores

    def best_per_entry(self, terms: Sequence[str]) -> np.ndarray:
        best = np.maximum.reduceat(self.scores(terms), self._starts)
        return np.where(self._has_docs, best, 0.0)

    def ceiling(self, terms: Sequence[str]) -> float:
        """Score of a document of average length holding every query term once."""
        return sum(float(self.bm25.idf.get(term, self.unknown_idf)) for term in terms)


class FaqIndex:
    """BM25 over each entry's question and phrasings (best phrasing wins) plus the whole entry."""

    # Tuned on tests/data/faq_paraphrases.yaml: with these, ANSWER is right about 98% of the
    # time and about three in four questions get a direct answer; the rest get a choice.
    ANSWER_CONFIDENCE = 0.45
    # ANSWER only if the runner-up scores at most this share of the top hit.
    RUNNER_UP_RATIO = 0.8
    # Below this nothing in the FAQ explains the question well enough to offer it.
    ROUTE_FLOOR = 0.3
    # Share of the score taken from the whole entry: it rewards a query that mixes words
    # from several phrasings of one entry; the best single phrasing still dominates.
    ENTRY_WEIGHT = 0.4
    # Index the dictionary words inside long compounds too, so a query naming only a part
    # ("规划许可") still meets an entry that spells the whole term.
    DOC_SUBWORDS = True

    def __init__(
        self,
        docs: Sequence[FaqDoc],
        analyzer: Analyzer,
        *,
        answer_confidence: float | None = None,
        runner_up_ratio: float | None = None,
        route_floor: float | None = None,
        units: UnitQuestions | None = None,
    ) -> None:
        self.docs = tuple(docs)
        self.analyzer = analyzer
        self.units = units
        self.answer_confidence = (
            self.ANSWER_CONFIDENCE if answer_confidence is None else answer_confidence
        )
        self.runner_up_ratio = self.RUNNER_UP_RATIO if runner_up_ratio is None else runner_up_ratio
        self.route_floor = self.ROUTE_FLOOR if route_floor is None else route_floor

        phrasings: list[list[str]] = []
        owners: list[int] = []
        whole: list[list[str]] = []
        for entry_no, doc in enumerate(self.docs):
            entry_terms: list[str] = []
            for text in (doc.question, *doc.phrasings):
                terms = analyzer.words(text, subwords=self.DOC_SUBWORDS)
                if terms:
                    phrasings.append(terms)
                    owners.append(entry_no)
                    entry_terms.extend(terms)
            whole.append(entry_terms)
        if not phrasings:
            raise ValueError("the FAQ has no indexable text")
        self._phrasings = _Field(phrasings, owners, len(self.docs))
        self._entries = _Field(whole, range(len(self.docs)), len(self.docs))

    @classmethod
    def build(
        cls,
        docs: Iterable[FaqDoc],
        synonyms: Sequence[Sequence[str]] = (),
        *,
        terms_path: Path | None = None,
        answer_confidence: float | None = None,
        runner_up_ratio: float | None = None,
        route_floor: float | None = None,
        items: Iterable[CatalogItem] = (),
        dictionary: Dictionary | None = None,
        calibration: Calibration | None = None,
    ) -> FaqIndex:
        """Build an index over `docs`, normalising every synonym to its group's first term.

        The domain dictionary and the calibrated thresholds are read from data/ unless given;
        explicit thresholds win over the calibration.
        """
        tokenizer = _tokenizer(terms_path or DEFAULT_TERMS_PATH)
        domain = Dictionary.load() if dictionary is None else dictionary
        measured = Calibration.load() if calibration is None else calibration
        analyzer = Analyzer(
            tokenizer, [*domain.synonyms, *synonyms], Normaliser(domain.corrections)
        )
        if measured is not None:
            answer_confidence = _first(answer_confidence, measured.answer_confidence)
            runner_up_ratio = _first(runner_up_ratio, measured.runner_up_ratio)
            route_floor = _first(route_floor, measured.route_floor)
        return cls(
            list(docs),
            analyzer,
            answer_confidence=answer_confidence,
            runner_up_ratio=runner_up_ratio,
            route_floor=route_floor,
            units=UnitQuestions(items, domain, analyzer.words),
        )

    def query_terms(self, text: str) -> list[str]:
        """The distinct index terms of a query, unknown compounds split into known bigrams."""
        return self._terms(self.analyzer.words(text))

    def _terms(self, words: Sequence[str]) -> list[str]:
        vocabulary = self._phrasings.postings
        terms: list[str] = []
        for word in words:
            if word in vocabulary or len(word) < 3 or not _CJK_RE.match(word):
                terms.append(word)
                continue
            starts = [i for i in range(len(word) - 1) if word[i : i + 2] in vocabulary]
            terms.extend(word[i : i + 2] for i in starts)
            covered = {i + offset for i in starts for offset in (0, 1)}
            # What the known bigrams leave over stays an (unknown) term: it dilutes confidence.
            if len(covered) < len(word) - 1:
                terms.append(word)
        return list(dict.fromkeys(terms))

    def search(self, text: str, limit: int = 3) -> list[FaqHit]:
        """Return up to `limit` entries, best first."""
        return self._rank(self.query_terms(text), limit)

    def _rank(self, terms: Sequence[str], limit: int) -> list[FaqHit]:
        if not terms or limit <= 0:
            return []
        phrasing = self._phrasings.best_per_entry(terms)
        entry = self._entries.best_per_entry(terms)
        phrasing_ceiling = self._phrasings.ceiling(terms)
        # Each field's score over its ceiling says how much of the query the entry explains;
        # the entry field is rescaled to the phrasing field's units so raw scores rank alike.
        scale = phrasing_ceiling / self._entries.ceiling(terms)
        raw = phrasing + self.ENTRY_WEIGHT * scale * entry
        normalised = raw / (phrasing_ceiling * (1 + self.ENTRY_WEIGHT))
        if limit < len(raw):
            top = np.argpartition(-raw, limit)[:limit]
            order = top[np.argsort(-raw[top], kind="stable")]
        else:
            order = np.argsort(-raw, kind="stable")
        return [
            FaqHit(self.docs[n].key, float(raw[n]), min(1.0, float(normalised[n])))
            for n in order
            if raw[n] > 0
        ]

    def decide(self, text: str) -> Decision:
        """Answer when one entry clearly fits, offer a choice when unsure, else route to staff.

        A question about which unit, person or phone handles one catalog item is answered from
        the catalog and the roster (key `unit:<item code>`) rather than from an FAQ entry.
        """
        words = self.analyzer.words(text)
        unit = self._unit_question(words)
        if unit is not None:
            return Decision(Verdict.ANSWER, (unit,))
        return self.judge(self._rank(self._terms(words), 3))

    def unit_question(self, text: str) -> FaqHit | None:
        """A hit for `unit:<item code>` when `text` asks who handles one catalog item."""
        return self._unit_question(self.analyzer.words(text))

    def _unit_question(self, words: Sequence[str]) -> FaqHit | None:
        code = self.units.match(words) if self.units is not None else None
        return None if code is None else FaqHit(unit_key(code), 1.0, 1.0)

    def judge(self, hits: Sequence[FaqHit], thresholds: Calibration | None = None) -> Decision:
        """The verdict for ranked `hits` under this index's (or the given) thresholds."""
        floor = self.route_floor if thresholds is None else thresholds.route_floor
        answer = self.answer_confidence if thresholds is None else thresholds.answer_confidence
        ratio = self.runner_up_ratio if thresholds is None else thresholds.runner_up_ratio
        if not hits or hits[0].confidence < floor:
            return Decision(Verdict.ROUTE, tuple(hits))
        top = hits[0]
        # Raw scores, not capped confidences, so two entries both above 1.0 still differ.
        runner_up = hits[1].score if len(hits) > 1 else 0.0
        if top.confidence >= answer and runner_up <= ratio * top.score:
            return Decision(Verdict.ANSWER, (top,))
        return Decision(Verdict.CHOOSE, tuple(h for h in hits if h.confidence >= floor))


def _first(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def parse_faq_yaml(text: str) -> tuple[list[FaqDoc], list[list[str]], dict[str, str]]:
    """docs, synonym groups, answers by key"""
    data: Any = yaml.safe_load(text) or {}
    synonyms = [[str(term) for term in group] for group in data.get("synonyms") or ()]
    docs: list[FaqDoc] = []
    answers: dict[str, str] = {}
    for item in data.get("entries") or ():
        key = str(item["key"])
        if key in answers:
            raise ValueError(f"duplicate FAQ key: {key}")
        docs.append(
            FaqDoc(
                key=key,
                question=str(item["question"]),
                phrasings=tuple(str(p) for p in phrasings_of(item)),
                department=item.get("department"),
                tags=tuple(str(t) for t in item.get("tags") or ()),
            )
        )
        answers[key] = str(item.get("answer") or "")
    return docs, synonyms, answers


def phrasings_of(item: dict[str, Any]) -> list[str]:
    """An entry's phrasings followed by its 相似问法 (`similar:`), both used in retrieval."""
    return [*(item.get("phrasings") or ()), *(item.get("similar") or ())]


def confusion_report(index: FaqIndex, labelled: Sequence[tuple[str, str]]) -> ConfusionReport:
    """Top-1 and top-3 accuracy of `index` on (query, expected key) pairs, with the misses."""
    report = ConfusionReport(total=len(labelled), top1=0, top3=0)
    for query, expected in labelled:
        got = tuple(hit.key for hit in index.search(query, limit=3))
        if got[:1] == (expected,):
            report.top1 += 1
        if expected in got:
            report.top3 += 1
        if got[:1] != (expected,):
            report.misses.append((query, expected, got))
    return report
