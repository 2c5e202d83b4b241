"""The app's menu (自定义菜单): 待办事项 opens /desk signed in through WeCom's OAuth."""

from __future__ import annotations

from typing import Any

from bot.channels.wecom.oauth import authorize_url
from bot.config import Settings
from dialogs.texts import label


def app_menu(settings: Settings) -> dict[str, Any]:
    """The menu as menu/create takes it."""
    return {
        "button": [
            {"type": "view", "name": label("wecom", "menu_desk"), "url": authorize_url(settings)}
        ]
    }
