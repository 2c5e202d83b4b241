from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from jinja2 import Environment

from services.faq_index import (
    DEFAULT_TERMS_PATH,
    FaqDoc,
    FaqIndex,
    Verdict,
    confusion_report,
    parse_faq_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
FAQ_PATH = ROOT / "data" / "faq.yaml"
PARAPHRASES_PATH = ROOT / "tests" / "data" / "faq_paraphrases.yaml"
UNITS = {
    "government_services",
    "industry_promotion",
    "economic_development",
    "finance",
    "housing_environment",
    "land_planning",
}


@pytest.fixture(scope="module")
def faq() -> tuple[list[FaqDoc], list[list[str]], dict[str, str]]:
    return parse_faq_yaml(FAQ_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def index(faq: tuple[list[FaqDoc], list[list[str]], dict[str, str]]) -> FaqIndex:
    docs, synonyms, _ = faq
    return FaqIndex.build(docs, synonyms)


@pytest.fixture(scope="module")
def paraphrases() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PARAPHRASES_PATH.read_text(encoding="utf-8"))
    return data


def labelled(paraphrases: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(item["q"]), str(item["key"])) for item in paraphrases["labelled"]]


def normalise(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def test_knowledge_base_has_at_least_80_entries(faq: Any) -> None:
    docs, _, _ = faq
    assert len(docs) >= 80


def test_every_entry_is_complete(faq: Any) -> None:
    docs, _, answers = faq
    keys = [doc.key for doc in docs]
    assert len(keys) == len(set(keys))
    for doc in docs:
        assert doc.key.isidentifier() and doc.key == doc.key.lower(), doc.key
        assert len(doc.phrasings) >= 3, doc.key
        assert doc.department in UNITS, doc.key
        assert answers[doc.key].strip(), doc.key


def test_every_answer_renders_with_autoescaped_jinja2(faq: Any) -> None:
    _, _, answers = faq
    env = Environment(autoescape=True)
    for key, answer in answers.items():
        rendered = env.from_string(answer).render()
        assert rendered.strip(), key
        assert "&lt;" not in rendered and "&amp;" not in rendered, key


def test_a_synonym_belongs_to_one_group_only(faq: Any) -> None:
    _, synonyms, _ = faq
    seen: dict[str, int] = {}
    for number, group in enumerate(synonyms):
        for term in group:
            assert seen.setdefault(term, number) == number, term


def test_terms_file_is_in_jieba_format() -> None:
    lines = DEFAULT_TERMS_PATH.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        word, freq, pos = line.split(" ")
        assert word and freq.isdigit() and pos


def test_labelled_set_is_large_and_uses_known_keys(faq: Any, paraphrases: Any) -> None:
    docs, _, _ = faq
    keys = {doc.key for doc in docs}
    pairs = labelled(paraphrases)
    assert len(pairs) >= 150
    assert {key for _, key in pairs} <= keys


def test_no_paraphrase_appears_verbatim_in_the_faq(faq: Any, paraphrases: Any) -> None:
    docs, _, _ = faq
    known = {normalise(text) for doc in docs for text in (doc.question, *doc.phrasings)}
    copied = [query for query, _ in labelled(paraphrases) if normalise(query) in known]
    assert not copied


def test_accuracy_on_labelled_paraphrases(index: FaqIndex, paraphrases: Any) -> None:
    report = confusion_report(index, labelled(paraphrases))
    print(report.format())
    assert report.top1_accuracy >= 0.85, report.format()
    assert report.top3_accuracy >= 0.95, report.format()


def test_off_topic_input_is_never_answered(index: FaqIndex, paraphrases: Any) -> None:
    verdicts = {str(text): index.decide(str(text)).verdict for text in paraphrases["off_topic"]}
    assert len(verdicts) >= 15
    assert Verdict.ANSWER not in verdicts.values(), verdicts
    routed = sum(verdict is Verdict.ROUTE for verdict in verdicts.values())
    assert routed >= 0.8 * len(verdicts), verdicts


@pytest.mark.parametrize("text", ["你好", "asdfgh", "", "   ", "？！。"])
def test_greetings_and_noise_are_routed_without_hits(index: FaqIndex, text: str) -> None:
    decision = index.decide(text)
    assert decision.verdict is Verdict.ROUTE
    assert decision.hits == ()


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("施工证", "construction_permit"),
        ("开工证", "construction_permit"),
        ("要钱", "cost_free"),
        ("代办收钱不", "cost_free"),
        ("工规证", "construction_planning_permit"),
        ("房产证", "real_estate_registration"),
        ("首问负责制", "first_responder_rule"),
    ],
)
def test_synonyms_find_the_canonical_entry(index: FaqIndex, query: str, key: str) -> None:
    assert [hit.key for hit in index.search(query)][:1] == [key]


def test_search_is_ordered_and_the_right_entry_stands_out(index: FaqIndex) -> None:
    hits = index.search("施工许可证在哪里办理", limit=5)
    assert 1 <= len(hits) <= 5
    confidences = [hit.confidence for hit in hits]
    assert confidences == sorted(confidences, reverse=True)
    assert hits[0].key == "construction_permit"
    # The right entry stands out: an entry about something else is far less likely.
    assert hits[-1].confidence < hits[0].confidence / 2


def test_clear_question_is_answered_with_one_hit(index: FaqIndex) -> None:
    decision = index.decide("帮代办服务要不要收费")
    assert decision.verdict is Verdict.ANSWER
    assert [hit.key for hit in decision.hits] == ["cost_free"]


@pytest.mark.parametrize("text", ["消防", "规划许可"])
def test_vague_question_offers_a_choice_of_at_most_three(index: FaqIndex, text: str) -> None:
    decision = index.decide(text)
    assert decision.verdict is Verdict.CHOOSE
    assert 2 <= len(decision.hits) <= 3


def test_thresholds_can_be_set_per_index(faq: Any) -> None:
    docs, synonyms, _ = faq
    strict = FaqIndex.build(docs, synonyms, answer_confidence=1.01)
    assert strict.decide("帮代办服务要不要收费").verdict is Verdict.CHOOSE
    lenient = FaqIndex.build(docs, synonyms, route_floor=0.0)
    assert lenient.decide("给我写一首诗").verdict is not Verdict.ROUTE


def test_parse_rejects_duplicate_keys() -> None:
    text = """
entries:
  - {key: a, question: q, phrasings: [x, y, z], answer: a, department: finance}
  - {key: a, question: q, phrasings: [x, y, z], answer: a, department: finance}
"""
    with pytest.raises(ValueError, match="duplicate"):
        parse_faq_yaml(text)


def test_confusion_report_lists_top1_misses(faq: Any) -> None:
    docs, synonyms, _ = faq
    index = FaqIndex.build(docs, synonyms)
    report = confusion_report(index, [("施工证", "construction_permit"), ("施工证", "eia")])
    assert (report.total, report.top1) == (2, 1)
    assert [miss[:2] for miss in report.misses] == [("施工证", "eia")]


def test_precomputed_weights_match_rank_bm25(index: FaqIndex) -> None:
    bm25 = index._phrasings.bm25
    for query in ["施工许可证在哪里办理", "帮代办收费吗", "重点项目一对一服务"]:
        terms = index.query_terms(query)
        per_phrasing, _, ceiling, _ = index._scorer.scores(terms, [], [])
        assert np.allclose(per_phrasing[0], bm25.get_scores(terms))
        assert ceiling == pytest.approx(sum(bm25.idf[term] for term in terms))


def test_an_entry_written_in_new_characters_is_segmented_with_their_words(
    faq: tuple[list[FaqDoc], list[list[str]], dict[str, str]],
) -> None:
    """jieba keeps only the words written in the FAQ's own characters: an entry that brings
    new characters brings their words with it (鸵鸟/养殖 rather than single characters)."""
    docs, synonyms, _ = faq
    shipped = FaqIndex.build(docs, synonyms)
    assert "鸵鸟" not in shipped.analyzer.words("鸵鸟养殖场怎么报建")
    ostrich = FaqDoc("ostrich_farm", "鸵鸟养殖场怎么报建", ("鸵鸟场的报建手续",), None)
    grown = FaqIndex.build([*docs, ostrich], synonyms)
    assert "鸵鸟" in grown.analyzer.words("鸵鸟养殖场怎么报建")
    decision = grown.decide("我们想建一个鸵鸟养殖场，手续怎么报")
    assert decision.hits[0].key == "ostrich_farm"
