"""Enterprise-worded questions: labelled splits, calibrated report, domain dictionary."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from services.faq_domain import Dictionary, read_catalog, unit_key
from services.faq_index import Calibration, FaqIndex, Verdict, parse_faq_yaml
from services.faq_report import (
    DEFAULT_SPLITS,
    OUT_OF_SCOPE,
    Outcome,
    Report,
    new_to,
    read_split,
    report,
    shipped_index,
)
from services.faq_suggest import Answered, format_suggestions, suggest

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "dev", "test")
BUCKETS = {0: "train", 1: "train", 2: "dev", 3: "test"}


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return shipped_index()


@pytest.fixture(scope="module")
def measured(index: FaqIndex) -> Report:
    return report(index, DEFAULT_SPLITS)


def test_at_least_600_distinct_questions_split_by_hash() -> None:
    seen: set[str] = set()
    for name in SPLITS:
        for question, _ in read_split(DEFAULT_SPLITS / f"{name}.yaml"):
            bucket = int(hashlib.sha1(question.encode()).hexdigest(), 16) % 4
            assert BUCKETS[bucket] == name, question
            assert question not in seen, question
            seen.add(question)
    assert len(seen) >= 600


def test_labels_name_an_entry_a_catalog_item_or_none(index: FaqIndex) -> None:
    items = read_catalog((ROOT / "data" / "items.yaml").read_text(encoding="utf-8"))
    known = {doc.key for doc in index.docs} | {unit_key(i.code) for i in items} | {OUT_OF_SCOPE}
    labels = {key for name in SPLITS for _, key in read_split(DEFAULT_SPLITS / f"{name}.yaml")}
    assert labels <= known, labels - known
    assert any(key.startswith("unit:") for key in labels)


def test_dev_and_test_questions_are_not_copied_into_the_faq(index: FaqIndex) -> None:
    for name in ("dev", "test"):
        labelled = read_split(DEFAULT_SPLITS / f"{name}.yaml")
        assert new_to(index, labelled) == labelled, f"{name} questions copied into the FAQ"


def test_train_questions_in_the_faq_are_measured_held_out_not_as_tuning(index: FaqIndex) -> None:
    train = read_split(DEFAULT_SPLITS / "train.yaml")
    fresh = new_to(index, train)
    assert len(fresh) < len(train) / 2
    # What stays is what the FAQ cannot hold (questions for a person, catalog questions) and
    # the two that tests/data/faq_paraphrases.yaml also asks, which must stay unseen there.
    entries = [question for question, key in fresh if key != OUT_OF_SCOPE and ":" not in key]
    assert entries == ["区域评估是什么意思", "首席责任人是干嘛的"]


def test_report_on_the_test_split_meets_floors(measured: Report) -> None:
    test = measured.test
    print(measured.format())
    assert test.questions >= 150 and test.out_of_scope >= 10
    # Floors a little under the measured figures (README); the targets are 93 %, 1 %, 98 %.
    assert test.direct_right_share >= 0.90
    assert test.direct_wrong_share <= 0.02
    # A choice is offered instead of a person only if it holds the right entry more often than
    # not: below half, routing every unsure question would serve the applicant better. (The
    # floor used to follow the output: 0.88, then 0.6 at 9 of 14; the target is 98 %.)
    assert test.rest_right_offered > test.rest / 2
    assert test.direct_right + test.rest_right_offered >= 0.95 * test.in_scope
    assert test.out_of_scope_routed >= 0.75 * test.out_of_scope


def test_held_out_phrasings_keep_the_precision_the_calibration_promises(measured: Report) -> None:
    held = measured.held_out
    assert held.questions >= 500
    # Harder than the tuning questions (about 97 % there): new wordings, and some entries
    # share phrasings (审批结果怎么送达: result_delivery or mailing_free).
    assert held.precision >= 0.97


def test_calibration_meets_the_precision_target_on_what_it_measured(measured: Report) -> None:
    both = Outcome(
        direct_right=measured.tuning.direct_right + measured.held_out.direct_right,
        direct_wrong=measured.tuning.direct_wrong + measured.held_out.direct_wrong,
    )
    assert both.precision_lower_bound >= 0.97
    thresholds = measured.calibration
    assert 0.0 < thresholds.route_floor <= thresholds.answer_confidence <= 1.0


def test_the_bot_reads_the_decision_the_report_computed(index: FaqIndex, measured: Report) -> None:
    stored = Calibration.load()
    assert stored == measured.calibration, "run `bangdaiban faq report` and commit the file"
    assert index.calibration == stored


def test_held_out_phrasings_are_new_to_the_index_they_are_asked(index: FaqIndex) -> None:
    smaller, held = index.held_out(0, 5)
    assert held and len(smaller.docs) == len(index.docs)
    kept = {text for doc in smaller.docs for text in doc.phrasings}
    assert not kept & {text for text, _ in held}
    assert sum(len(doc.phrasings) for doc in smaller.docs) + len(held) == sum(
        len(doc.phrasings) for doc in index.docs
    )


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("幫代辦服務要收費嗎", "cost_free"),
        ("施工許可證怎麼辦理", "construction_permit"),
        ("帮带办要交钱吗", "cost_free"),
    ],
)
def test_traditional_script_and_typos_reach_the_entry(
    index: FaqIndex, query: str, key: str
) -> None:
    assert [hit.key for hit in index.search(query)][:1] == [key]


@pytest.mark.parametrize(
    ("query", "item"),
    [
        ("环评到底该找哪个局", "environmental_review"),
        ("施工許可證歸哪個部門管", "construction_permit"),
        ("不动产登记有没有对接的电话", "property_registration"),
    ],
)
def test_who_handles_an_item_is_answered_from_the_catalog(
    index: FaqIndex, query: str, item: str
) -> None:
    decision = index.decide(query)
    assert decision.verdict is Verdict.ANSWER
    assert [hit.key for hit in decision.hits] == [unit_key(item)]


@pytest.mark.parametrize("query", ["环评怎么办理", "规划证找谁", "不知道找哪个部门"])
def test_how_to_and_ambiguous_questions_are_not_unit_questions(index: FaqIndex, query: str) -> None:
    assert not any(hit.key.startswith("unit:") for hit in index.decide(query).hits)


def test_dictionary_synonyms_do_not_overlap_the_faq_groups() -> None:
    _, faq_groups, _ = parse_faq_yaml((ROOT / "data" / "faq.yaml").read_text(encoding="utf-8"))
    dictionary = Dictionary.load()
    faq_terms = {term for group in faq_groups for term in group}
    extra = [term for group in dictionary.synonyms for term in group]
    assert len(extra) == len(set(extra))
    assert not set(extra) & faq_terms
    assert dictionary.corrections and dictionary.contact_terms and dictionary.item_aliases


def test_similar_phrasings_are_used_in_retrieval() -> None:
    text = """
entries:
  - key: a
    question: 帮代办收费吗
    phrasings: [x, y, z]
    similar: [窗口的咖啡机坏了]
    answer: a
    department: finance
"""
    docs, synonyms, _ = parse_faq_yaml(text)
    assert docs[0].phrasings[-1] == "窗口的咖啡机坏了"
    index = FaqIndex.build(docs, synonyms, dictionary=Dictionary())
    assert [hit.key for hit in index.search("咖啡机坏了")] == ["a"]


def test_suggest_groups_similar_unanswered_questions(index: FaqIndex) -> None:
    answered = [
        Answered(1, "厂区门口的路灯坏了怎么报修", "已转市政部门。"),
        Answered(2, "厂区门口路灯坏了找谁修", "市政部门。"),
        Answered(3, "帮代办收费吗", "免费。"),
        Answered(4, "能不能帮忙申请高新技术企业认定", "请找科技部门。"),
    ]
    groups = suggest(index, answered)
    assert [[p.question_id for p in g.pairs] for g in groups] == [[1, 2], [4]]
    drafts = yaml.safe_load(format_suggestions(groups))
    assert drafts[0]["question"] == "厂区门口的路灯坏了怎么报修"
    assert drafts[0]["similar"] == ["厂区门口路灯坏了找谁修"]
    assert drafts[0]["answer"] == "已转市政部门。"
