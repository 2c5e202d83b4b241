"""The 帮代办服务申请表 intake dialog, declared as data (附件2 of the work plan)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields

from dialogs.fields import (
    Answers,
    Choice,
    CreditCode,
    Form,
    MultiChoice,
    Option,
    Phone,
    Text,
)
from dialogs.texts import label
from storage.cases import Application

OTHER_ITEM = "other"
CATALOG = "catalog"  # option source: the approval-item catalog from the database
PROJECT_CODE = re.compile(r"\d{4}-\d{6}-\d{2}-\d{2}-\d{6}")


def _general(answers: Answers) -> bool:
    return answers.get("project_kind") == "general"


def _wants_other(answers: Answers) -> bool:
    return OTHER_ITEM in (answers.get("requested_items") or [])


def _options(*pairs: tuple[str, str | None]) -> tuple[Option, ...]:
    return tuple(Option(value, label("options", value), stop) for value, stop in pairs)


def catalog_options(items: Sequence[tuple[str, str]]) -> list[Option]:
    """Catalog (code, name) pairs as options, with 其他 last."""
    return [Option(code, name) for code, name in items] + [
        Option(OTHER_ITEM, label("options", OTHER_ITEM))
    ]


def application(answers: Answers) -> Application:
    """The dialog's answers as the one value cases are made from: by the fields' names."""
    names = {f.name for f in dataclass_fields(Application)}
    given = {k: v for k, v in answers.items() if k in names and isinstance(v, str)}
    items = answers.get("requested_items") or []
    return Application(**given, item_codes=tuple(code for code in items if code != OTHER_ITEM))


def _ask(name: str) -> str:
    return f"application/{name}.j2"


APPLICATION = Form(
    "application",
    fields=(
        Choice(
            "project_kind", _ask("project_kind"), options=_options(("general", None), ("key", None))
        ),
        Choice(
            "approved_in_area",
            _ask("approved_in_area"),
            when=_general,
            options=_options(("approved_yes", None), ("approved_no", _ask("not_filed"))),
        ),
        Choice(
            "real_estate",
            _ask("real_estate"),
            when=_general,
            options=_options(
                ("real_estate_no", None), ("real_estate_yes", _ask("real_estate_excluded"))
            ),
        ),
        Text("company", _ask("company"), min_length=2, max_length=100, fold=True, single_line=True),
        CreditCode("credit_code", _ask("credit_code"), optional=True),
        Text(
            "project_name",
            _ask("project_name"),
            min_length=2,
            max_length=100,
            fold=True,
            single_line=True,
        ),
        Text(
            "project_code",
            _ask("project_code"),
            optional=True,
            max_length=40,
            pattern=PROJECT_CODE,
            pattern_error="invalid/project_code.j2",
            fold=True,
            single_line=True,
        ),
        Text(
            "contact_name",
            _ask("contact_name"),
            min_length=2,
            max_length=40,
            fold=True,
            single_line=True,
        ),
        Phone("contact_phone", _ask("contact_phone")),
        Text("project_summary", _ask("project_summary"), min_length=10, max_length=1000),
        MultiChoice("requested_items", _ask("requested_items"), options=CATALOG),
        Text("other_items", _ask("other_items"), when=_wants_other, max_length=500),
    ),
)
