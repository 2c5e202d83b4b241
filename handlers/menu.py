"""The main menu and the buttons shared by every screen of the applicant."""

from __future__ import annotations

from chat.callbacks import CallbackData
from chat.events import Button, Reply
from dialogs.texts import label, render


class MenuPress(CallbackData, prefix="m"):
    """A main-menu button; feature modules declare their actions (Routes.menu_action)."""

    action: str


def menu_button(action: str, label_key: str | None = None) -> Button:
    return MenuPress(action).button(label("buttons", label_key or action))


def menu_buttons(subscribed: bool = False) -> list[list[Button]]:
    return [
        [menu_button("ask"), menu_button("apply")],
        [menu_button("cases"), menu_button("contact")],
        [menu_button("book"), menu_button("unsubscribe" if subscribed else "subscribe")],
    ]


def with_menu(template: str, subscribed: bool = False, /, **context: object) -> Reply:
    """A message followed by the main menu."""
    return Reply(render(template, **context), menu_buttons(subscribed))


def expired() -> Reply:
    return with_menu("dialog/expired.j2")
