"""The one text cleaning: what reaches the core is what a person can see."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs.application import APPLICATION
from dialogs.cleaning import clean
from dialogs.engine import DialogEngine
from dialogs.fields import CreditCode, Invalid, Text
from dialogs.texts import render

OPTIONS: dict[str, list[object]] = {"catalog": []}
HIDDEN = "\x00\u200b\u200c\u200d\u2060\ufeff\u202e\u202d\u2066\u2069\u00ad\u3164\x07\x1b"


def test_nul_bidi_and_zero_width_characters_are_removed() -> None:
    assert clean(f"湖南{HIDDEN}星城\u202e科技") == "湖南星城科技"
    assert clean("\u200b\u200b") == ""


def test_lines_and_spaces_are_tidied_but_prose_keeps_chinese_punctuation() -> None:
    assert (
        clean("  第一行，\r\n\r\n\r\n\r\n第二行！\u2028第三行  ") == "第一行，\n\n第二行！\n第三行"
    )
    assert clean("a\u3000\u00a0 b\tc") == "a b c"
    assert clean("第一行\n第二行", single_line=True) == "第一行 第二行"


def test_folding_makes_full_and_half_width_forms_equal() -> None:
    full = clean("湖南Ｘｉｎｇ（长沙）科技有限公司１号", fold=True)
    half = clean("湖南Xing(长沙)科技有限公司1号", fold=True)
    assert full == half == "湖南Xing(长沙)科技有限公司1号"


@given(st.text(st.characters(codec="utf-8"), max_size=300) | st.text(max_size=50))
@settings(max_examples=200, deadline=None)
def test_cleaned_text_has_no_hidden_characters_and_is_stable(value: str) -> None:
    cleaned = clean(value)
    assert not any(char in cleaned for char in HIDDEN)
    assert clean(cleaned) == cleaned
    cleaned.encode("utf-8")  # storable: no lone surrogates


def test_two_zero_width_spaces_do_not_pass_a_two_character_minimum() -> None:
    field = APPLICATION.field_by_name["company"]
    assert isinstance(field, Text) and field.min_length == 2
    with pytest.raises(Invalid):
        field.parse("\u200b\u200b", OPTIONS)
    with pytest.raises(Invalid):
        field.parse("甲\u200b", OPTIONS)


def test_company_names_typed_in_full_or_half_width_are_stored_alike() -> None:
    field = APPLICATION.field_by_name["company"]
    assert field.parse("ＡＢＣ建设（湖南）有限公司", OPTIONS) == field.parse(
        "ABC建设(湖南)有限公司", OPTIONS
    )


def test_project_summary_keeps_its_punctuation_and_lines() -> None:
    field = APPLICATION.field_by_name["project_summary"]
    assert field.parse("项目位于湘江新区，\n总投资约5亿元！\u200b", OPTIONS) == (
        "项目位于湘江新区，\n总投资约5亿元！"
    )


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("91430100MA4L16JQ9", "应为 18 位，您输入了 17 位"),
        ("91430100MA4L16JQ9DX", "应为 18 位，您输入了 19 位"),
        ("9143010OMA4L16JQ9D", "只能包含数字和大写字母"),
        ("91430100MA4L16JQ9E", "校验位"),
    ],
)
def test_credit_code_error_says_which_rule_failed(typed: str, says: str) -> None:
    with pytest.raises(Invalid) as refused:
        CreditCode("credit_code", "application/credit_code.j2").parse(typed, OPTIONS)
    message = render(refused.value.template, **refused.value.params)
    assert says in message
    if "校验位" in says:
        assert "18 位" not in message


def test_credit_code_in_full_width_with_spaces_is_accepted() -> None:
    field = CreditCode("credit_code", "application/credit_code.j2")
    assert field.parse("９１４３ ０１００ＭＡ４Ｌ１６ＪＱ９ｄ", OPTIONS) == "91430100MA4L16JQ9D"


def test_choice_accepts_its_label_typed_in_full_width() -> None:
    engine = DialogEngine({"application": APPLICATION}, {"catalog": []})
    draft, _ = engine.start("application")
    engine.on_text(draft, "一般项目(非房地产)")
    assert draft.answers["project_kind"] == "general"


def test_a_blank_letter_alone_among_printable_text_is_removed() -> None:
    assert clean("000000000\u3164") == "000000000"
    assert clean("项目\uffa0简介", fold=True) == "项目简介"
