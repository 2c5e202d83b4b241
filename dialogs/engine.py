"""The one engine that runs every declarative form: ask, validate, move, edit, review."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from chat.callbacks import CallbackData
from chat.events import Button, Reply
from dialogs.fields import (
    Choice,
    Field,
    Form,
    Invalid,
    MultiChoice,
    Option,
    OptionSource,
    Value,
)
from dialogs.texts import label, render


class DialogPress(CallbackData, prefix="f"):
    """`f:<token>:cancel|back|submit`: the token names the dialog the button belongs to."""

    token: str
    action: Literal["cancel", "back", "submit"]


class DialogField(CallbackData, prefix="f"):
    """`f:<token>:<action>:<field>`: edit a field from the review, or skip/keep/done it."""

    token: str
    action: Literal["edit", "skip", "keep", "done"]
    field: str


class DialogOption(CallbackData, prefix="f"):
    """`f:<token>:pick|toggle:<field>:<index>`: one option of a choice."""

    token: str
    action: Literal["pick", "toggle"]
    field: str
    index: str


DialogButton = DialogPress | DialogField | DialogOption
DIALOG_BUTTONS = (DialogPress, DialogField, DialogOption)


class Expired(Exception):
    """A button from an old message no longer matches the conversation."""


@dataclass
class Step:
    """What one user action did to a dialog."""

    replies: list[Reply] = field(default_factory=list)
    submit: dict[str, Value] | None = None  # answers to persist, when the user pressed 提交
    finished: bool = False  # the dialog is over (cancelled, stopped); state must be cleared
    stopped: bool = False  # ended by an answer that rules the application out


@dataclass
class Draft:
    """A dialog in progress, kept as plain data in the conversation state."""

    form: str
    token: str
    answers: dict[str, Value]
    current: str | None  # field being asked; None means the review page
    editing: bool = False  # answer one field, then go back to review
    # Options looked up for this draft alone (a booking's free slots): name → [value, label].
    choices: dict[str, list[list[str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Draft:
        return cls(**data)

    def dump(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "token": self.token,
            "answers": self.answers,
            "current": self.current,
            "editing": self.editing,
            "choices": self.choices,
        }


class DialogEngine:
    def __init__(self, forms: dict[str, Form], options: OptionSource) -> None:
        self.forms = forms
        self.options = options

    # -- entry points ------------------------------------------------------------------

    def start(self, form_name: str, prefill: dict[str, Value] | None = None) -> tuple[Draft, Step]:
        form = self.forms[form_name]
        # 128 random bits: a draft (and the submission it becomes) never collides with another.
        draft = Draft(form_name, secrets.token_urlsafe(16), dict(prefill or {}), None)
        draft.current = self._next_unanswered(form, draft)
        return draft, Step([self._screen(form, draft)])

    def resume(self, draft: Draft) -> Step:
        """Show where the user stopped, e.g. after /apply while a draft exists."""
        return Step([self._screen(self.forms[draft.form], draft, resumed=True)])

    def on_text(self, draft: Draft, text: str) -> Step:
        form = self.forms[draft.form]
        if draft.current is None:
            return Step([self._screen(form, draft, error=render("invalid/use_review_buttons.j2"))])
        current = form.field_by_name[draft.current]
        try:
            value = current.parse(text, self._source(draft))
        except Invalid as bad:
            return Step([self._screen(form, draft, error=render(bad.template, **bad.params))])
        return self._accept(form, draft, current, value)

    def on_button(self, draft: Draft, data: str | DialogButton) -> Step:
        """Handle a dialog button; one of another dialog (token) or any other kind is stale."""
        pressed = CallbackData.parse(data) if isinstance(data, str) else data
        if not isinstance(pressed, DIALOG_BUTTONS) or pressed.token != draft.token:
            raise Expired
        form = self.forms[draft.form]
        action = pressed.action
        args = [] if isinstance(pressed, DialogPress) else [pressed.field]
        if isinstance(pressed, DialogOption):
            args.append(pressed.index)
        if action == "cancel":
            return Step([Reply(render("dialog/cancelled.j2"))], finished=True)
        if action == "back":
            return self._back(form, draft)
        if action == "submit" and draft.current is None:
            return Step(submit=self._final_answers(form, draft))
        if action == "edit" and draft.current is None and args and args[0] in form.field_by_name:
            target = form.field_by_name[args[0]]
            if not target.applies(draft.answers):
                raise Expired
            draft.current, draft.editing = target.name, True
            return Step([self._screen(form, draft)])
        # The remaining actions answer the field being asked, and name it.
        if not args or args[0] != draft.current:
            raise Expired
        current = form.field_by_name[draft.current]
        if action == "skip" and current.optional:
            return self._accept(form, draft, current, None)
        if action == "keep" and draft.editing:
            return self._accept(form, draft, current, draft.answers.get(current.name))
        if action == "pick" and isinstance(current, Choice) and len(args) == 2:
            return self._accept(form, draft, current, self._option_value(draft, current, args[1]))
        if action == "toggle" and isinstance(current, MultiChoice) and len(args) == 2:
            value = self._option_value(draft, current, args[1])
            return self._toggle(form, draft, current, value)
        if action == "done" and isinstance(current, MultiChoice):
            if not draft.answers.get(current.name):
                error = render("invalid/choose_at_least_one.j2")
                return Step([self._screen(form, draft, error=error)])
            return self._advance(form, draft)
        raise Expired

    # -- moves -------------------------------------------------------------------------

    def _accept(self, form: Form, draft: Draft, current: Field, value: Value) -> Step:
        draft.answers[current.name] = value
        if isinstance(current, Choice):
            option = current.option(value, self._source(draft))
            if option is not None and option.stop:
                return Step([Reply(render(option.stop))], finished=True, stopped=True)
        return self._advance(form, draft)

    def _advance(self, form: Form, draft: Draft) -> Step:
        self._drop_inapplicable(form, draft)
        if draft.editing:
            draft.current = self._next_unanswered(form, draft)
            draft.editing = draft.current is not None
        else:
            draft.current = self._next_after(form, draft, draft.current)
        return Step([self._screen(form, draft, replace=True)])

    def _back(self, form: Form, draft: Draft) -> Step:
        fields = form.applicable(draft.answers)
        if draft.editing:
            draft.current, draft.editing = None, False
        elif draft.current is None:
            draft.current = fields[-1].name
        else:
            index = [f.name for f in fields].index(draft.current)
            draft.current = fields[max(index - 1, 0)].name
        return Step([self._screen(form, draft, replace=True)])

    def _toggle(self, form: Form, draft: Draft, current: MultiChoice, value: str) -> Step:
        chosen = list(draft.answers.get(current.name) or [])
        if value in chosen:
            chosen.remove(value)
        elif len(chosen) >= current.max_selected:
            error = render("invalid/too_many.j2", limit=current.max_selected)
            return Step([self._screen(form, draft, error=error)])
        else:
            chosen.append(value)
        draft.answers[current.name] = chosen
        return Step([self._screen(form, draft, replace=True)])

    # -- helpers -----------------------------------------------------------------------

    def show(self, draft: Draft) -> Reply:
        """The draft's current screen again (after its options were looked up anew)."""
        return self._screen(self.forms[draft.form], draft)

    def _source(self, draft: Draft) -> OptionSource:
        """The engine's options, with the draft's own looked-up options over them."""
        if not draft.choices:
            return self.options
        own = {k: [Option(v, text) for v, text in pairs] for k, pairs in draft.choices.items()}
        return {**self.options, **own}

    def _option_value(self, draft: Draft, current: Choice | MultiChoice, index: str) -> str:
        choices = current.choices(self._source(draft))
        if not index.isdigit() or int(index) >= len(choices):
            raise Expired
        return choices[int(index)].value

    def _next_unanswered(self, form: Form, draft: Draft) -> str | None:
        for f in form.applicable(draft.answers):
            if f.name not in draft.answers:
                return f.name
        return None

    def _next_after(self, form: Form, draft: Draft, name: str | None) -> str | None:
        names = [f.name for f in form.applicable(draft.answers)]
        start = names.index(name) + 1 if name in names else 0
        for candidate in names[start:]:
            if candidate not in draft.answers:
                return candidate
        return self._next_unanswered(form, draft)

    def _drop_inapplicable(self, form: Form, draft: Draft) -> None:
        for f in form.fields:
            if f.name in draft.answers and not f.applies(draft.answers):
                del draft.answers[f.name]

    def _final_answers(self, form: Form, draft: Draft) -> dict[str, Value]:
        return {f.name: draft.answers.get(f.name) for f in form.applicable(draft.answers)}

    # -- screens -----------------------------------------------------------------------

    def _screen(
        self,
        form: Form,
        draft: Draft,
        error: str | None = None,
        *,
        resumed: bool = False,
        replace: bool = False,
    ) -> Reply:
        if draft.current is None:
            return self._review(form, draft, error, resumed)
        current = form.field_by_name[draft.current]
        fields = form.applicable(draft.answers)
        value = draft.answers.get(current.name)
        text = render(
            "dialog/step.j2",
            step=[f.name for f in fields].index(current.name) + 1,
            total=len(fields),
            question=render(current.prompt),
            current=current.display(value, self._source(draft)) if draft.editing else None,
            error=error,
            resumed=resumed,
        )
        return Reply(
            text,
            self._buttons(current, draft),
            replace=replace and error is None,
            expects_text=not isinstance(current, Choice | MultiChoice),
        )

    def _buttons(self, current: Field, draft: Draft) -> list[list[Button]]:
        token, name, source = draft.token, current.name, self._source(draft)
        rows: list[list[Button]] = []
        if isinstance(current, Choice):
            rows += [
                [DialogOption(token, "pick", name, str(i)).button(o.label)]
                for i, o in enumerate(current.choices(source))
            ]
        if isinstance(current, MultiChoice):
            chosen = set(draft.answers.get(name) or [])
            for i, o in enumerate(current.choices(source)):
                mark = label("marks", "checked" if o.value in chosen else "unchecked")
                rows.append(
                    [DialogOption(token, "toggle", name, str(i)).button(f"{mark} {o.label}")]
                )
            rows.append([DialogField(token, "done", name).button(label("buttons", "done"))])
        extra: list[Button] = []
        if current.optional:
            extra.append(DialogField(token, "skip", name).button(label("buttons", "skip")))
        if draft.editing and name in draft.answers:
            extra.append(DialogField(token, "keep", name).button(label("buttons", "keep")))
        if extra:
            rows.append(extra)
        rows.append(
            [
                DialogPress(token, "back").button(label("buttons", "back")),
                DialogPress(token, "cancel").button(label("buttons", "cancel")),
            ]
        )
        return rows

    def _review(self, form: Form, draft: Draft, error: str | None, resumed: bool) -> Reply:
        fields = form.applicable(draft.answers)
        source = self._source(draft)
        rows = [(f.name, f.display(draft.answers.get(f.name), source)) for f in fields]
        text = render(form.review, rows=rows, error=error, resumed=resumed)
        edit = [
            DialogField(draft.token, "edit", f.name).button(
                label("buttons", "edit") + label("fields", f.name)
            )
            for f in fields
        ]
        buttons = [edit[i : i + 2] for i in range(0, len(edit), 2)]
        buttons.append(
            [
                DialogPress(draft.token, "submit").button(label("buttons", "submit")),
                DialogPress(draft.token, "cancel").button(label("buttons", "cancel")),
            ]
        )
        return Reply(text, buttons)
