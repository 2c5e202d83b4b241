"""WeCom's forms: texts within 2,048 bytes, cards within their fields, never cut silently;
a bad or missing setting stops the channel with one line."""

from __future__ import annotations

import itertools

import pytest

from bot.channels.wecom import required
from bot.channels.wecom.cards import SUB_TITLE_CHARS, TEXT_BYTES, Card, compose
from bot.config import Settings, SettingsError, load_settings
from chat.events import Button, Reply

DESK = "https://open.example/oauth?redirect=desk"
ids = itertools.count(1)


def build(replies: list[Reply]):  # type: ignore[no-untyped-def]
    return compose(replies, lambda d: f"https://dl/{d.name}", DESK, lambda: f"t{next(ids)}")


def test_a_long_text_is_split_into_messages_of_at_most_2048_bytes_and_nothing_is_lost() -> None:
    lines = [f"第{n}行：办理进度说明，材料已收齐，正在审核。" for n in range(200)]
    out = build([Reply("\n".join(lines))])
    parts = [m for m in out.messages if isinstance(m, str)]
    assert len(parts) > 1 and all(len(p.encode()) <= TEXT_BYTES for p in parts)
    assert "\n".join(parts).split("\n") == lines


def test_a_card_too_long_for_its_field_is_shortened_and_says_where_the_rest_is() -> None:
    text = "新的帮代办申请 BDB-2026-000123\n" + "项目简介：" + "建设智能装备厂房，" * 40
    (card,) = build([Reply(text, [[Button("处理", "w:view:BDB-2026-000123")]])]).messages
    assert isinstance(card, Card)
    body = card.body
    assert body["main_title"]["title"] == "新的帮代办申请 BDB-2026-000123"
    assert len(body["sub_title_text"]) <= SUB_TITLE_CHARS and body["sub_title_text"].endswith("…")
    (more,) = body["horizontal_content_list"]
    assert more["url"] == DESK and more["type"] == 1
    assert body["button_list"] == [{"text": "处理", "style": 1, "key": "0"}]


def test_a_short_card_is_whole_and_has_no_more_link() -> None:
    (card,) = build([Reply("新的咨询\n路灯坏了", [[Button("回复", "s:reply:1")]])]).messages
    assert isinstance(card, Card)
    assert card.body["sub_title_text"] == "路灯坏了" and "horizontal_content_list" not in card.body


def test_more_buttons_than_a_card_holds_become_numbered_options() -> None:
    buttons = [[Button(f"单位{n}", f"s:fwdto:1:u{n}")] for n in range(8)]
    out = build([Reply("请选择转办单位：", buttons)])
    (text,) = out.messages
    assert isinstance(text, str) and "[1] 单位0" in text and "[8] 单位7" in text
    assert [b.data for b in out.shown] == [f"s:fwdto:1:u{n}" for n in range(8)]


def settings(**values: object) -> Settings:
    base = {
        "wecom_corp_id": "ww1",
        "wecom_agent_id": 1000002,
        "wecom_secret": "s",
        "wecom_token": "t",
        "wecom_aes_key": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
    }
    return load_settings(**(base | values))


def test_a_missing_or_bad_setting_is_named_in_one_line() -> None:
    assert required(settings()).corp_id == "ww1"
    with pytest.raises(SettingsError, match=r"^WECOM_SECRET: required for the WeCom channel$"):
        required(settings(wecom_secret=None))
    with pytest.raises(SettingsError, match=r"^WECOM_AES_KEY: .*EncodingAESKey has 43"):
        settings(wecom_aes_key="short")
    with pytest.raises(SettingsError, match=r"^WECOM_API_URL: "):
        settings(wecom_api_url="qyapi.weixin.qq.com")
    with pytest.raises(SettingsError, match=r"^WECOM_AGENT_ID: "):
        settings(wecom_agent_id=0)


async def test_sends_to_one_member_are_spaced_within_wecoms_minute_and_hour_limits() -> None:
    from bot.delivery import send_limiters
    from storage.ratelimit import Grant
    from storage.state import MemoryStateStore

    config = settings()  # 30 a minute, 1,000 an hour: the hour is the stricter, 3.6 s apart
    assert config.wecom_member_spacing == 3.6
    limiter = send_limiters(config, MemoryStateStore(), ["wecom"])["wecom"]
    first, other = await limiter.reserve(["wecom:LiNa", "wecom:WangLei"])
    (again,) = await limiter.reserve(["wecom:LiNa"])
    assert first.grant is Grant.SEND and other.grant is Grant.SEND
    assert again.grant is Grant.CHAT_BUSY and 3.5 < again.seconds <= 3.6 * 1.03
