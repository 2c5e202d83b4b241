"""Field types of declarative forms, with their validators."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, InvalidLength
from stdnum.exceptions import ValidationError as StdnumError

from dialogs.cleaning import clean

Answers = Mapping[str, Any]
Value = str | list[str] | None


class Invalid(Exception):
    """An answer was refused; the template explains why to the user."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template)
        self.template = template
        self.params = params


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    stop: str | None = None  # choosing it ends the dialog with this template


OptionSource = Mapping[str, Sequence[Option]]


@dataclass(frozen=True)
class Field(ABC):
    """One question of a form; `name` doubles as the label key in labels.yaml."""

    name: str
    prompt: str
    optional: bool = False
    when: Callable[[Answers], bool] | None = None

    def applies(self, answers: Answers) -> bool:
        return self.when is None or self.when(answers)

    @abstractmethod
    def parse(self, text: str, options: OptionSource) -> Value:
        """Validate typed text into the stored value, or raise Invalid."""

    def display(self, value: Value, options: OptionSource) -> str:
        return "" if value is None else str(value)


@dataclass(frozen=True)
class Text(Field):
    min_length: int = 1
    max_length: int = 100
    pattern: re.Pattern[str] | None = None
    pattern_error: str = "invalid/pattern.j2"
    fold: bool = False  # NFKC: names and codes compare equal in full- and half-width forms
    single_line: bool = False

    def parse(self, text: str, options: OptionSource) -> Value:
        value = clean(text, fold=self.fold, single_line=self.single_line)
        if not value:
            raise Invalid("invalid/empty.j2")
        if len(value) > self.max_length:
            raise Invalid("invalid/too_long.j2", limit=self.max_length, length=len(value))
        if len(value) < self.min_length:
            raise Invalid("invalid/too_short.j2", limit=self.min_length, length=len(value))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise Invalid(self.pattern_error)
        return value


@dataclass(frozen=True)
class Phone(Field):
    """A Chinese mobile or landline number, stored as E.164."""

    def parse(self, text: str, options: OptionSource) -> Value:
        raw = clean(text, fold=True, single_line=True)
        try:
            number = phonenumbers.parse(raw, "CN")
        except phonenumbers.NumberParseException:
            raise Invalid("invalid/phone.j2") from None
        if number.country_code != 86 or not phonenumbers.is_valid_number(number):
            raise Invalid("invalid/phone.j2")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def display(self, value: Value, options: OptionSource) -> str:
        return format_phone(value) if isinstance(value, str) else ""


def format_phone(e164: str) -> str:
    """National format: 138 0013 8000, 0731 8888 8888."""
    number = phonenumbers.parse(e164, "CN")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


@dataclass(frozen=True)
class CreditCode(Field):
    """统一社会信用代码: 18 characters with a check digit (GB 32100-2015)."""

    def parse(self, text: str, options: OptionSource) -> Value:
        code = uscc.compact(clean(text, fold=True, single_line=True))
        try:
            return str(uscc.validate(code))
        except InvalidLength:
            raise Invalid("invalid/credit_code_length.j2", length=len(code)) from None
        except InvalidChecksum:
            raise Invalid("invalid/credit_code_checksum.j2") from None
        except StdnumError:  # InvalidFormat, InvalidComponent: characters outside the code set
            raise Invalid("invalid/credit_code_format.j2") from None


@dataclass(frozen=True)
class Choice(Field):
    """One option, picked by button (or by typing its label)."""

    options: str | tuple[Option, ...] = ()

    def choices(self, options: OptionSource) -> Sequence[Option]:
        # A named source may be a draft's own, looked up after the first screen (bookings).
        return options.get(self.options, ()) if isinstance(self.options, str) else self.options

    def parse(self, text: str, options: OptionSource) -> Value:
        wanted = clean(text, fold=True, single_line=True)
        for option in self.choices(options):
            if wanted in (clean(option.label, fold=True), option.value):
                return option.value
        raise Invalid("invalid/choose_button.j2")

    def option(self, value: Value, options: OptionSource) -> Option | None:
        return next((o for o in self.choices(options) if o.value == value), None)

    def display(self, value: Value, options: OptionSource) -> str:
        option = self.option(value, options)
        return option.label if option else ""


@dataclass(frozen=True)
class MultiChoice(Field):
    """Several options toggled by buttons, confirmed with 完成."""

    options: str | tuple[Option, ...] = ()
    max_selected: int = 20

    def choices(self, options: OptionSource) -> Sequence[Option]:
        # A named source may be a draft's own, looked up after the first screen (bookings).
        return options.get(self.options, ()) if isinstance(self.options, str) else self.options

    def parse(self, text: str, options: OptionSource) -> Value:
        raise Invalid("invalid/choose_buttons.j2")

    def display(self, value: Value, options: OptionSource) -> str:
        labels = {o.value: o.label for o in self.choices(options)}
        return "、".join(labels.get(v, v) for v in value or [])


@dataclass(frozen=True)
class Form:
    name: str
    fields: tuple[Field, ...]
    review: str = "dialog/review.j2"
    field_by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_by_name", {f.name: f for f in self.fields})

    def applicable(self, answers: Answers) -> list[Field]:
        return [f for f in self.fields if f.applies(answers)]
