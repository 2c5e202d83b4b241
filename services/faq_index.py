"""FAQ retrieval: jieba segmentation, synonym normalisation, BM25 and overlaps, learned weights.

Pure Python, no I/O except reading the jieba user dictionary once. The bot loads the
knowledge base (data/faq.yaml) wherever it likes and hands the entries to `FaqIndex.build`.
"""

from __future__ import annotations

import logging
import math
import re
import string
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

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
_CJK_CHAR_RE = re.compile(r"[\u4e00-\u9fff]")
_NON_WORD_RE = re.compile(r"\W")

_tokenizer_lock = threading.Lock()
# Built per alphabet; the two newest are kept (the index in use and, during a reload, the next).
_tokenizers: OrderedDict[tuple[Path, frozenset[str]], jieba.Tokenizer] = OrderedDict()
_TOKENIZERS_KEPT = 2


def _tokenizer(terms_path: Path, alphabet: frozenset[str]) -> jieba.Tokenizer:
    """The private jieba tokenizer for this user dictionary and alphabet, built on first use.

    jieba's dictionary holds 349k words (≈ 60 MB as its prefix dictionary); only the words
    written entirely in `alphabet`, the characters of the FAQ's texts, are kept (≈ 5 MB for
    the shipped FAQ). A word with a character no entry uses can never be an index term; left
    out, it only changes how the unknown part of a question is split into single characters.
    The labelled questions measure the same with either dictionary (docs/faq-quality.md).
    The user dictionary's terms are all added.
    """
    key = (terms_path, alphabet)
    with _tokenizer_lock:
        tokenizer = _tokenizers.get(key)
        if tokenizer is None:
            jieba.setLogLevel(logging.WARNING)  # its own handler prints DEBUG lines otherwise
            tokenizer = jieba.Tokenizer()
            tokenizer.FREQ, tokenizer.total = _words_within(tokenizer, alphabet)
            tokenizer.initialized = True
            if terms_path.exists():
                tokenizer.load_userdict(str(terms_path))
            _tokenizers[key] = tokenizer
            while len(_tokenizers) > _TOKENIZERS_KEPT:
                _tokenizers.popitem(last=False)
        _tokenizers.move_to_end(key)
        return tokenizer


def _words_within(
    tokenizer: jieba.Tokenizer, alphabet: frozenset[str]
) -> tuple[dict[str, int], int]:
    """jieba's prefix dictionary (each word's count, each word's prefixes at 0) and the total
    count, of the words written in `alphabet` only. The dictionary file is read line by line,
    so the whole of it is never in memory."""
    freq: dict[str, int] = {}
    total = 0
    with tokenizer.get_dict_file() as lines:
        for line in lines:
            word, count = line.split(maxsplit=2)[:2]
            text = word.decode("utf-8")
            if not alphabet.issuperset(text):
                continue
            times = int(count)
            freq[text] = times
            total += times
            for end in range(1, len(text)):
                freq.setdefault(text[:end], 0)
    return freq, total


def _alphabet(texts: Iterable[str]) -> frozenset[str]:
    """Every character of `texts`, and the ASCII letters and digits."""
    return frozenset(ch for text in texts for ch in text) | _ASCII_ALNUM


_ASCII_ALNUM = frozenset(string.ascii_lowercase + string.ascii_uppercase + string.digits)


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


# What the decision looks at for the best entry of a question, in this order. Scores are the
# combined retrieval score, BM25's share of the query explained, and the two overlaps; "margin"
# is the lead over the runner-up; "agrees_*" says whether that signal alone ranks it first too.
FEATURES = (
    "score",
    "margin",
    "explained",
    "words_alike",
    "chars_alike",
    "explained_margin",
    "chars_margin",
    "known_terms",
    "length",
    "agrees_explained",
    "agrees_words",
    "agrees_chars",
    "rank_chance",
)
_RANK_CHANCE = FEATURES.index("rank_chance")


@dataclass(frozen=True)
class Ranking:
    """The best entries for a question, best first, and the features of the first."""

    hits: tuple[FaqHit, ...]
    features: tuple[float, ...] = ()


@dataclass(frozen=True)
class Calibration:
    """The decision measured by `bangdaiban faq report`.

    A logistic model over FEATURES (bias first), capped by the ranking's own chance, gives the
    chance that the best entry is the right one: answer directly at answer_confidence or more.
    Below that, offer the three best entries while that chance is at least route_floor; below
    it, route to a person.
    """

    answer_confidence: float
    route_floor: float
    weights: tuple[float, ...]

    @classmethod
    def load(cls, path: Path = DEFAULT_CALIBRATION_PATH) -> Calibration | None:
        """The stored decision, or None where the report has not written one."""
        if not path.exists():
            return None
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        thresholds = data.get("thresholds") or {}
        model = data.get("model") or {}
        weights = model.get("weights")
        if list(model.get("features") or ()) != ["bias", *FEATURES] or not weights:
            return None  # written for another model: the defaults apply until the next report
        return cls(
            float(thresholds["answer_confidence"]),
            float(thresholds["route_floor"]),
            tuple(float(w) for w in weights),
        )

    def answer_chance(self, features: Sequence[float]) -> float:
        """The model's chance that the best entry is right, never above the ranking's own.

        A near tie between two entries (消防: design review or acceptance) is a coin toss
        whatever else the features say; the ranking's softmax chance is about as well
        calibrated as the model on the tuning data (0.6-0.7 → 69 % right, 0.9 and more → 99 %).
        """
        ranked = 1.0 / (1.0 + math.exp(-features[_RANK_CHANCE]))
        return min(_logistic(self.weights, features), ranked)


def _logistic(weights: Sequence[float], features: Sequence[float]) -> float:
    z = weights[0] + sum(w * f for w, f in zip(weights[1:], features, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _default_weights(**named: float) -> tuple[float, ...]:
    return (named.pop("bias"), *(named.pop(name, 0.0) for name in FEATURES))


# Used only until `bangdaiban faq report` has written data/faq_calibration.yaml: answer a
# clear, well-separated match, route what is unlikely to match anything.
DEFAULT_CALIBRATION = Calibration(
    answer_confidence=0.9,
    route_floor=0.3,
    weights=_default_weights(bias=-12.0, score=10.0, margin=16.0),
)


class Analyzer:
    """Turns text into normalised index terms: segment, drop noise, map synonyms."""

    def __init__(
        self,
        tokenizer: jieba.Tokenizer,
        synonyms: Sequence[Sequence[str]],
        normalise: Normaliser | None = None,
        intents: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self.normalise = normalise or Normaliser({})
        self.intents = {
            name: [self.normalise(cue) for cue in cues if cue.strip()]
            for name, cues in (intents or {}).items()
        }
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
        return self.segment(self.normalise(text), subwords=subwords)

    def segment(self, normalised: str, *, subwords: bool = False) -> list[str]:
        """The words of already normalised text (see `words`)."""
        result: list[str] = []
        pieces = (
            self._tokenizer.cut_for_search(normalised, HMM=False)
            if subwords
            else self._tokenizer.cut(normalised, HMM=False)
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


def _accumulate(found: Sequence[np.ndarray], values: Sequence[np.ndarray], size: int) -> np.ndarray:
    """The sum of the postings' values per column, in one pass (postings in the given order):
    a numpy call per posting cost more than the arithmetic at a thousand entries."""
    if not found:
        return np.zeros(size)
    return np.bincount(np.concatenate(found), weights=np.concatenate(values), minlength=size)


def _entry_groups(owners: Sequence[int], entries: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Where each entry's documents start, and the entries without any (None if there are none)."""
    owner = np.asarray(owners, dtype=np.int64)
    starts = np.minimum(np.searchsorted(owner, np.arange(entries)), len(owner) - 1)
    empty = np.bincount(owner, minlength=entries) == 0
    return starts, empty if empty.any() else None


class _Field:
    """One BM25 index over term lists, laid out per term.

    rank_bm25 computes the statistics (idf, lengths, term counts); since a term's BM25
    weight in a document does not depend on the query, the weights are laid out per term
    once, so a query costs a few vector additions instead of a pass over every document.
    """

    # Tuned on the train split (tests/data/faq_questions/train.yaml) with dev-calibrated thresholds.
    UNKNOWN_WEIGHT = 1.5

    def __init__(self, corpus: Sequence[list[str]]) -> None:
        self.bm25 = BM25Okapi(corpus)
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

    def idf(self, term: str) -> float:
        """The term's weight in a ceiling: its idf, or the unknown weight."""
        return float(self.bm25.idf.get(term, self.unknown_idf))


class _Overlap:
    """How much of a query and a document say the same thing: idf-weighted Dice of term sets.

    BM25 only asks how much of the query a document explains; this also asks how much of the
    document the query explains, so a short question prefers the phrasing that says just that
    ("怎么申请帮代办" → 申请帮代办, not 撤回帮代办申请). A query term no document uses weighs
    like the rarest known one: it is evidence of a question the FAQ does not cover. Used as the
    share of the query a document holds instead, it tells how much of the question a whole
    entry's wordings cover.
    """

    def __init__(self, corpus: Sequence[Iterable[str]]) -> None:
        # Sorted, not hashed: sums in a fixed order give the same floats in every process,
        # which keeps the calibrated decision reproducible.
        sets = [sorted(set(doc)) for doc in corpus]
        frequency: dict[str, int] = {}
        for terms in sets:
            for term in terms:
                frequency[term] = frequency.get(term, 0) + 1
        size = len(sets)
        self.idf = {t: math.log((size + 1) / (n + 0.5)) for t, n in frequency.items()}
        self.unknown_idf = max(self.idf.values(), default=1.0)
        self.mass = np.asarray([sum(self.idf[t] for t in terms) for terms in sets])
        ids: dict[str, list[int]] = {}
        for doc_no, terms in enumerate(sets):
            for term in terms:
                ids.setdefault(term, []).append(doc_no)
        self.postings = {t: np.asarray(d, dtype=np.int64) for t, d in ids.items()}
        self.size = size

    def weighted(self, term: str) -> np.ndarray:
        """The term's idf once per document holding it."""
        return np.full(len(self.postings[term]), self.idf[term])


def char_grams(words: Sequence[str]) -> list[str]:
    """Characters and character bigrams of the meaningful words, read as one string: they meet
    wordings that segment differently (花费 / 费用, 规划证 / 规划许可证) where whole words do
    not. Held-out phrasings, bigrams alone → with the characters: top-1 0.885 → 0.894, top-3
    0.962 → 0.964 (dev: 0.951 → 0.959, 0.975 → 0.992)."""
    text = "".join(words)
    bigrams = [text[i : i + 2] for i in range(len(text) - 1)]
    return [*bigrams, *_CJK_CHAR_RE.findall(text)] or list(text)


class _Scorer:
    """Every posting sum of a query in one numpy pass: BM25 over the phrasings and over whole
    entries, the word and the character overlaps, the classifier's cosine.

    The fields' postings are laid out ahead over one column space, the three phrasing-sized
    blocks first (BM25, words, characters), then the three entry-sized ones (BM25, characters,
    classifier): a query looks each term, gram and feature up once and one bincount adds them
    all, where a numpy call per field and step cost more than the arithmetic. Each column gets
    its own field's values in the order that field adds them, so every score is the same double
    as field by field.
    """

    def __init__(
        self,
        owners: Sequence[int],
        phrasings: _Field,
        entries: _Field,
        words: _Overlap,
        chars: _Overlap,
        entry_chars: _Overlap,
        classifier: _Classifier,
    ) -> None:
        size, count = phrasings.size, entries.size
        if not words.size == chars.size == len(owners) == size:
            raise ValueError("the phrasing fields must index the same documents")
        if chars.idf.keys() != entry_chars.idf.keys():
            raise ValueError("both character overlaps must index the same grams")
        if np.any(np.diff(np.asarray(owners)) < 0):
            raise ValueError("documents must be grouped by entry")
        self.size, self.count = size, count
        self.columns = 3 * size + 3 * count
        word_at, char_at = size, 2 * size
        entry_at, entry_char_at, classifier_at = 3 * size, 3 * size + count, 3 * size + 2 * count
        # Per term: its weight in each BM25 ceiling and in the word overlap's query mass (the
        # field's unknown one where the field lacks it), then its postings in those blocks.
        self.unknown_term = (phrasings.unknown_idf, entries.unknown_idf, words.unknown_idf)
        self.terms: dict[str, tuple[float, float, float, np.ndarray, np.ndarray]] = {}
        for term in {*phrasings.postings, *entries.postings, *words.postings}:
            ids: list[np.ndarray] = []
            values: list[np.ndarray] = []
            for bm25, offset in ((phrasings, 0), (entries, entry_at)):
                if term in bm25.postings:
                    ids.append(bm25.postings[term][0] + offset)
                    values.append(bm25.postings[term][1])
            if term in words.postings:
                ids.append(words.postings[term] + word_at)
                values.append(words.weighted(term))
            self.terms[term] = (
                phrasings.idf(term),
                entries.idf(term),
                words.idf.get(term, words.unknown_idf),
                np.concatenate(ids),
                np.concatenate(values),
            )
        # Per gram: its idf among the phrasings and among the entries, its postings in both.
        self.unknown_gram = (chars.unknown_idf, entry_chars.unknown_idf)
        self.grams = {
            gram: (
                chars.idf[gram],
                entry_chars.idf[gram],
                np.concatenate(
                    [chars.postings[gram] + char_at, entry_chars.postings[gram] + entry_char_at]
                ),
                np.concatenate([chars.weighted(gram), entry_chars.weighted(gram)]),
            )
            for gram in chars.idf
        }
        # Per classifier feature: its idf, its columns, their centroid values, and what the
        # feature met once in a query adds (idf times the centroids).
        self.unknown_feature = classifier.unknown_idf
        self.features = {
            feature: (idf, ids + classifier_at, centroid, idf * centroid)
            for feature, (idf, ids, centroid) in classifier.centroids.items()
        }
        # What the Dice overlaps divide by, words above characters.
        self.dice_mass = np.stack([words.mass, chars.mass])
        self.starts, self.empty = _entry_groups(owners, count)

    def scores(
        self, terms: Sequence[str], grams: Iterable[str], features: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Per phrasing (3 × phrasings): BM25, word Dice, character Dice; per entry
        (3 × entries): BM25, the share of the query's grams the entry holds, the classifier's
        cosine; then the two BM25 ceilings (the score of an average document holding every
        query term once)."""
        found: list[np.ndarray] = []
        values: list[np.ndarray] = []
        phrasing_ceiling: list[float] = []
        entry_ceiling: list[float] = []
        word_mass = 0.0
        for term in terms:
            known = self.terms.get(term)
            if known is None:
                phrasing_idf, entry_idf, word_idf = self.unknown_term
            else:
                phrasing_idf, entry_idf, word_idf, ids, weights = known
                found.append(ids)
                values.append(weights)
            phrasing_ceiling.append(phrasing_idf)
            entry_ceiling.append(entry_idf)
            word_mass += word_idf
        gram_mass = entry_gram_mass = 0.0
        for gram in dict.fromkeys(grams):
            posting = self.grams.get(gram)
            if posting is None:
                gram_mass += self.unknown_gram[0]
                entry_gram_mass += self.unknown_gram[1]
                continue
            gram_mass += posting[0]
            entry_gram_mass += posting[1]
            found.append(posting[2])
            values.append(posting[3])
        feature_mass = 0.0
        for feature, count in Counter(features).items():
            weighted = self.features.get(feature)
            if weighted is None:
                feature_mass += (count * self.unknown_feature) ** 2
                continue
            idf, ids, centroid, once = weighted
            weight = count * idf
            feature_mass += weight * weight
            found.append(ids)
            values.append(once if count == 1 else weight * centroid)
        common = _accumulate(found, values, self.columns)
        per_phrasing = common[: 3 * self.size].reshape(3, self.size)
        per_phrasing[1:] *= 2
        query_mass = np.array([[word_mass], [gram_mass]])
        per_phrasing[1:] /= np.maximum(self.dice_mass + query_mass, 1e-9)
        per_entry = common[3 * self.size :].reshape(3, self.count)
        per_entry[1] /= max(entry_gram_mass, 1e-9)
        per_entry[2] /= max(math.sqrt(feature_mass), 1e-9)
        return per_phrasing, per_entry, sum(phrasing_ceiling), sum(entry_ceiling)


# What the ranking adds up for each entry, each in [0, 1]: BM25's share of the query explained;
# the best phrasing's idf-weighted Dice with the query over words and over characters and
# bigrams; the share of the query's characters and bigrams the whole entry holds (its phrasings
# together); the share of the entry's phrasings that ask what the question asks (how, how long,
# where, how much … the intents of data/faq_dictionary.yaml). The shares of the query held by
# the best phrasing alone (words, characters) were tried too: the fit gave them no weight. Last,
# the cosine of the question with the entry's tf-idf centroid (_Classifier).
# The ranking's own chance for its best entry is a softmax of the scores at this sharpness (the
# one bench/faq_rank_fit.py fits the weights with): near ties read as a coin toss.
RANK_SHARPNESS = 10.0

SIGNALS = (
    "explained",
    "words_alike",
    "chars_alike",
    "entry_chars_covered",
    "intent",
    "classifier",
)


class _Intents:
    """What kind of answer a text asks for, read from its wording before stop words go."""

    def __init__(
        self,
        intents: Mapping[str, Sequence[str]],
        texts: Sequence[Sequence[str]],
        analyzer: Analyzer,
    ) -> None:
        self._cues = {
            name: re.compile("|".join(map(re.escape, cues)))
            for name, cues in intents.items()
            if cues
        }
        asked = [[self.of(analyzer.normalise(text)) for text in entry] for entry in texts]
        self._share: dict[str, np.ndarray] = {
            name: np.asarray(
                [sum(name in a for a in entry) / max(len(entry), 1) for entry in asked]
            )
            for name in self._cues
        }
        self._none = np.zeros(len(texts))

    def of(self, text: str) -> set[str]:
        return {name for name, cue in self._cues.items() if cue.search(text)}

    def share(self, text: str) -> np.ndarray:
        """Per entry, the largest share of its phrasings asking one thing `text` asks."""
        asked = self.of(text)
        if not asked:
            return self._none
        shares = [self._share[name] for name in sorted(asked)]
        return shares[0] if len(shares) == 1 else np.max(shares, axis=0)


class _Classifier:
    """A supervised signal: which entry a question reads like as a whole (Rocchio).

    Each entry is the centroid of its question's and phrasings' tf-idf vectors over character
    1-3-grams of the normalised text (stop words kept: "哪些企业" and "由谁来做" ask different
    things) and their words; the signal is the cosine of the question with each centroid.
    Unlike the overlaps with the best phrasing it pools what all of an entry's wordings share.
    Held-out phrasings, five-fold cross-validated ranking fit: top-1 0.925 → 0.940 with it
    (multinomial naive Bayes instead: 0.922-0.929; bigrams only or 1-4-grams, sublinear tf or
    unit-length phrasings: 0.939-0.940).
    """

    def __init__(self, examples: Sequence[Sequence[Sequence[str]]]) -> None:
        frequency: dict[str, int] = {}
        for entry in examples:
            for features in entry:
                for gram in sorted(set(features)):
                    frequency[gram] = frequency.get(gram, 0) + 1
        size = sum(len(entry) for entry in examples)
        self.idf = {g: math.log((size + 1) / (n + 0.5)) for g, n in frequency.items()}
        centroids: dict[str, dict[int, float]] = {}
        for entry_no, entry in enumerate(examples):
            for features in entry:
                for gram in features:
                    row = centroids.setdefault(gram, {})
                    row[entry_no] = row.get(entry_no, 0.0) + self.idf[gram]
        norms = np.zeros(len(examples))
        for row in centroids.values():
            for entry_no, weight in row.items():
                norms[entry_no] += weight * weight
        norms = np.sqrt(np.maximum(norms, 1e-12))
        # Per gram: its idf, the entries whose centroid holds it and their centroid values.
        self.centroids: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
        for gram, row in centroids.items():
            ids = np.asarray(sorted(row), dtype=np.int64)
            self.centroids[gram] = (
                self.idf[gram],
                ids,
                np.asarray([row[i] for i in ids]) / norms[ids],
            )
        # A query gram no phrasing uses weighs like the rarest known one: it is evidence of a
        # question the FAQ does not cover, so it lowers the cosine with every entry.
        self.unknown_idf = max(self.idf.values(), default=1.0)


def classifier_features(text: str, words: Sequence[str]) -> list[str]:
    """Character 1-3-grams of the normalised text (punctuation dropped) and its words."""
    chars = _NON_WORD_RE.sub("", text)
    grams = [chars[i : i + n] for n in (1, 2, 3) for i in range(len(chars) - n + 1)]
    return [*grams, *(f"w:{word}" for word in words)]


class FaqIndex:
    """Six signals over each entry's question and phrasings, one learned decision.

    BM25 over words (best phrasing wins, plus the whole entry), the idf-weighted overlap of words
    and that of characters and their bigrams, the characters the whole entry holds, the intent
    facet and the cosine with the entry's centroid (SIGNALS) rank the entries by learned weights;
    a calibrated model over how well and how clearly the best entry matches (see Calibration)
    answers, offers a choice or routes.
    """

    # Share of the BM25 score taken from the whole entry: it rewards a query that mixes words
    # from several phrasings of one entry; the best single phrasing still dominates.
    ENTRY_WEIGHT = 0.4
    # Index the dictionary words inside long compounds too, so a query naming only a part
    # ("规划许可") still meets an entry that spells the whole term.
    DOC_SUBWORDS = True
    # Ranking score = a weighted sum of SIGNALS (each in [0, 1]); the weights are fitted by
    # `python bench/faq_rank_fit.py` on the phrasings held out of the index and the train split.
    RANK_WEIGHTS: ClassVar[dict[str, float]] = {
        "explained": 0.31,
        "words_alike": 0.05,
        "chars_alike": 0.48,
        "entry_chars_covered": 0.12,
        "intent": 0.15,
        "classifier": 1.38,
    }

    def __init__(
        self,
        docs: Sequence[FaqDoc],
        analyzer: Analyzer,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        units: UnitQuestions | None = None,
    ) -> None:
        self.docs = tuple(docs)
        self.analyzer = analyzer
        self.units = units
        self.calibration = calibration

        phrasings: list[list[str]] = []
        plain: list[list[str]] = []
        owners: list[int] = []
        whole: list[list[str]] = []
        examples: list[list[list[str]]] = []
        for entry_no, doc in enumerate(self.docs):
            entry_terms: list[str] = []
            entry_examples: list[list[str]] = []
            for text in (doc.question, *doc.phrasings):
                terms = analyzer.words(text, subwords=self.DOC_SUBWORDS)
                if terms:
                    phrasings.append(terms)
                    plain.append(analyzer.words(text))
                    owners.append(entry_no)
                    entry_terms.extend(terms)
                    entry_examples.append(classifier_features(analyzer.normalise(text), plain[-1]))
            whole.append(entry_terms)
            examples.append(entry_examples)
        if not phrasings:
            raise ValueError("the FAQ has no indexable text")
        self._phrasings = _Field(phrasings)
        entry_grams: list[list[str]] = [[] for _ in self.docs]
        for entry_no, words in zip(owners, plain, strict=True):
            entry_grams[entry_no].extend(char_grams(words))
        self._scorer = _Scorer(
            owners,
            self._phrasings,
            _Field(whole),
            _Overlap(plain),
            _Overlap([char_grams(w) for w in plain]),
            _Overlap(entry_grams),
            _Classifier(examples),
        )
        self._intents = _Intents(
            self.analyzer.intents, [[doc.question, *doc.phrasings] for doc in self.docs], analyzer
        )
        self._weights = np.asarray([self.RANK_WEIGHTS[name] for name in SIGNALS])
        # The ranking score of a perfect match (each signal at 1).
        self._ceiling = float(self._weights.sum())

    @property
    def answer_confidence(self) -> float:
        return self.calibration.answer_confidence

    @property
    def route_floor(self) -> float:
        return self.calibration.route_floor

    @classmethod
    def build(
        cls,
        docs: Iterable[FaqDoc],
        synonyms: Sequence[Sequence[str]] = (),
        *,
        terms_path: Path | None = None,
        answer_confidence: float | None = None,
        route_floor: float | None = None,
        items: Iterable[CatalogItem] = (),
        dictionary: Dictionary | None = None,
        calibration: Calibration | None = None,
    ) -> FaqIndex:
        """Build an index over `docs`, normalising every synonym to its group's first term.

        The domain dictionary and the calibrated decision are read from data/ unless given;
        explicit thresholds win over the calibration's.
        """
        docs = list(docs)
        items = list(items)
        domain = Dictionary.load() if dictionary is None else dictionary
        groups = [*domain.synonyms, *synonyms]
        normalise = Normaliser(domain.corrections)
        texts = [
            *(text for doc in docs for text in (doc.question, *doc.phrasings)),
            *(term for group in groups for term in group),
            *domain.corrections.values(),
            *domain.contact_terms,
            *(alias for aliases in domain.item_aliases.values() for alias in aliases),
            *(cue for cues in domain.intents.values() for cue in cues),
            *(item.name for item in items),
        ]
        tokenizer = _tokenizer(
            terms_path or DEFAULT_TERMS_PATH, _alphabet(normalise(text) for text in texts)
        )
        measured = calibration or Calibration.load() or DEFAULT_CALIBRATION
        measured = replace(
            measured,
            answer_confidence=_first(answer_confidence, measured.answer_confidence),
            route_floor=_first(route_floor, measured.route_floor),
        )
        analyzer = Analyzer(tokenizer, groups, normalise, domain.intents)
        return cls(
            docs,
            analyzer,
            calibration=measured,
            units=UnitQuestions(items, domain, analyzer.words),
        )

    def held_out(self, fold: int, folds: int) -> tuple[FaqIndex, list[tuple[str, str]]]:
        """This index without one fold of every entry's phrasings, and those phrasings.

        The phrasings left out are questions the smaller index has never seen: measuring the
        decision on them says how it does on new wordings, which the labelled questions the
        FAQ was written against cannot.
        """
        kept: list[FaqDoc] = []
        held: list[tuple[str, str]] = []
        for entry_no, doc in enumerate(self.docs):
            keep: list[str] = []
            for position, text in enumerate(doc.phrasings):
                if (position + entry_no) % folds == fold:
                    held.append((text, doc.key))
                else:
                    keep.append(text)
            kept.append(replace(doc, phrasings=tuple(keep)))
        smaller = FaqIndex(kept, self.analyzer, calibration=self.calibration, units=self.units)
        return smaller, held

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

    def _read(self, text: str) -> tuple[str, list[str]]:
        """The question normalised once, and its words."""
        normalised = self.analyzer.normalise(text)
        return normalised, self.analyzer.segment(normalised)

    def search(self, text: str, limit: int = 3) -> list[FaqHit]:
        """Return up to `limit` entries, best first."""
        normalised, words = self._read(text)
        return list(self._rank(words, limit, normalised).hits)

    def rank(self, text: str) -> Ranking:
        """The three best entries for `text` and what the decision needs to know about them."""
        normalised, words = self._read(text)
        return self._rank(words, 3, normalised)

    def signals(self, text: str) -> np.ndarray | None:
        """SIGNALS × entries for `text` (None when nothing in it is indexable)."""
        normalised, words = self._read(text)
        terms = self._terms(words)
        return self._signals(words, terms, normalised) if terms else None

    def _signals(self, words: Sequence[str], terms: Sequence[str], normalised: str) -> np.ndarray:
        per_phrasing, per_entry, phrasing_ceiling, entry_ceiling = self._scorer.scores(
            terms, char_grams(words), classifier_features(normalised, words)
        )
        signals = np.empty((len(SIGNALS), len(self.docs)))
        # Each entry's best phrasing by BM25, words alike and characters alike.
        np.maximum.reduceat(per_phrasing, self._scorer.starts, axis=1, out=signals[:3])
        if self._scorer.empty is not None:
            signals[:3, self._scorer.empty] = 0.0
        # Each field's score over its ceiling says how much of the query the entry explains;
        # the entry field is rescaled to the phrasing field's units so raw scores rank alike.
        entry = per_entry[0]
        entry *= self.ENTRY_WEIGHT * (phrasing_ceiling / entry_ceiling)
        signals[0] += entry
        signals[0] /= phrasing_ceiling * (1 + self.ENTRY_WEIGHT)
        signals[3] = per_entry[1]
        signals[4] = self._intents.share(normalised)
        signals[5] = per_entry[2]
        return signals

    def _rank(self, words: Sequence[str], limit: int, normalised: str) -> Ranking:
        terms = self._terms(words)
        if not terms or limit <= 0:
            return Ranking(())
        signals = self._signals(words, terms, normalised)
        raw = self._weights @ signals
        order = _best(raw, max(limit, 2)).tolist()
        top = raw[order].tolist()
        hits = tuple(
            FaqHit(self.docs[n].key, score, min(1.0, score / self._ceiling))
            for n, score in zip(order[:limit], top, strict=False)
            if score > 0
        )
        if not hits:
            return Ranking(())
        best, second = order[0], order[1] if len(order) > 1 else order[0]
        # Python floats from here: the same doubles, without a numpy scalar per operation.
        explained, words_alike, chars_alike = signals[:3, best].tolist()
        explained_2nd, _, chars_alike_2nd = signals[:3, second].tolist()
        explained_max, words_alike_max, chars_alike_max = signals[:3].max(axis=1).tolist()
        spread = raw - top[0]
        spread *= RANK_SHARPNESS
        known = sum(term in self._phrasings.postings for term in terms) / len(terms)
        features = (
            top[0] / self._ceiling,
            (top[0] - top[1 if len(top) > 1 else 0]) / self._ceiling,
            explained,
            words_alike,
            chars_alike,
            explained - explained_2nd,
            chars_alike - chars_alike_2nd,
            known,
            min(len(terms), 8) / 8,
            float(explained >= explained_max),
            float(words_alike >= words_alike_max),
            float(chars_alike >= chars_alike_max),
            _log_odds(1.0 / float(np.exp(spread, out=spread).sum())),
        )
        return Ranking(hits, features)

    def decide(self, text: str) -> Decision:
        """Answer when one entry clearly fits, offer a choice when unsure, else route to staff.

        A question about which unit, person or phone handles one catalog item is answered from
        the catalog and the roster (key `unit:<item code>`) rather than from an FAQ entry.
        """
        normalised, words = self._read(text)
        unit = self._unit_question(words)
        if unit is not None:
            return Decision(Verdict.ANSWER, (unit,))
        return self.judge(self._rank(words, 3, normalised))

    def unit_question(self, text: str) -> FaqHit | None:
        """A hit for `unit:<item code>` when `text` asks who handles one catalog item."""
        return self._unit_question(self.analyzer.words(text))

    def _unit_question(self, words: Sequence[str]) -> FaqHit | None:
        code = self.units.match(words) if self.units is not None else None
        return None if code is None else FaqHit(unit_key(code), 1.0, 1.0)

    def judge(self, ranking: Ranking, calibration: Calibration | None = None) -> Decision:
        """The verdict for `ranking` under this index's (or the given) calibration."""
        measured = calibration or self.calibration
        hits = ranking.hits
        if not hits:
            return Decision(Verdict.ROUTE, ())
        chance = measured.answer_chance(ranking.features)
        if chance >= measured.answer_confidence:
            return Decision(Verdict.ANSWER, hits[:1])
        if chance < measured.route_floor:
            return Decision(Verdict.ROUTE, hits)
        return Decision(Verdict.CHOOSE, hits)


# Up to this many entries one stable sort is cheaper than partition, select and sort (5 µs → 2 µs
# at the real FAQ's hundred entries; 6 µs → 16 µs at a thousand).
_SORT_ALL_UP_TO = 256


def _best(values: np.ndarray, count: int) -> np.ndarray:
    """The positions of the `count` largest values, largest first, ties in position order
    (as a stable sort of all of them would give, without sorting a thousand entries)."""
    if len(values) <= max(count, _SORT_ALL_UP_TO):
        return np.argsort(-values, kind="stable")[:count]
    floor = np.partition(values, len(values) - count)[len(values) - count]
    candidates = np.flatnonzero(values >= floor)
    return candidates[np.argsort(-values[candidates], kind="stable")][:count]


def _log_odds(chance: float) -> float:
    chance = min(max(chance, 1e-4), 1 - 1e-4)
    return math.log(chance / (1 - chance))


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
