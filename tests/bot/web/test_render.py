"""Bot texts on the web: Telegram-HTML reduced to b, i, a, code, pre as a node tree."""

from __future__ import annotations

from pathlib import Path

import segno
from typer.testing import CliRunner

from bot.channels.web.render import bot_message, own_message, tree
from bot.cli import app as cli
from chat.events import Button


def test_allowed_tags_are_kept_and_everything_else_is_text_or_dropped() -> None:
    nodes = tree(
        '<b>粗</b> <i>斜</i> <code>x</code> <pre>p</pre> <a href="https://gov.cn/a">链接</a>'
        "<u>下划线</u><script>alert(1)</script><img src=x onerror=alert(1)>"
        '<a href="javascript:alert(1)">坏</a> &lt;script&gt;'
    )
    tags = [n["t"] for n in nodes if isinstance(n, dict)]
    assert tags == ["b", "i", "code", "pre", "a", "a"]
    good, bad = [n for n in nodes if isinstance(n, dict) and n["t"] == "a"]
    assert good["href"] == "https://gov.cn/a" and "href" not in bad
    text = "".join(n for n in nodes if isinstance(n, str))
    assert "下划线" in text and "alert" not in text and "<script>" in text


def test_messages_carry_buttons_and_own_text_stays_plain() -> None:
    message = bot_message("您好", [[Button("提交", "f:t:submit")]])
    assert message["buttons"] == [[{"label": "提交", "data": "f:t:submit"}]]
    assert own_message("<b>x</b>")["text"] == ["<b>x</b>"]


def test_qr_command_writes_a_code_opening_the_chat_with_its_source(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "window.svg"
    result = runner.invoke(cli, ["qr", "--out", str(out), "--source", "海报"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<?xml")
    assert "src=poster" in result.output
    png = tmp_path / "w.png"
    assert runner.invoke(cli, ["qr", "--out", str(png)]).exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert runner.invoke(cli, ["qr", "--out", str(png), "--source", "别处"]).exit_code == 2
    assert segno.make("x")  # the library the command uses


def test_phone_numbers_and_emails_become_tel_and_mailto_links() -> None:
    nodes = tree(
        "· 服务专员 许芳 0731-88880502 xufang@example.gov.cn\n"
        "手机13812345678，热线12345。申请编号：BDB-2026-000123，信用代码91430100MA4L13812345678"
        '<code>0731-88880501</code> <a href="https://gov.cn">0731-88880503</a>'
    )
    links = [(n["c"], n["href"]) for n in nodes if isinstance(n, dict) and n["t"] == "a"]
    assert links == [
        (["0731-88880502"], "tel:073188880502"),
        (["xufang@example.gov.cn"], "mailto:xufang@example.gov.cn"),
        (["13812345678"], "tel:13812345678"),
        (["12345"], "tel:12345"),
        (["0731-88880503"], "https://gov.cn"),  # an existing link is left as it was
    ]
    text = "".join(n for n in nodes if isinstance(n, str))
    assert "BDB-2026-000123" in text and "91430100MA4L13812345678" in text
