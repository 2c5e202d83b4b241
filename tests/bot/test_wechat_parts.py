"""The WeChat channel's parts: WeChat's own crypto sample, the reply form, menu, links, CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.downloads import DownloadLinks
from bot.channels.wechat.compose import TEXT_LIMIT, compose, notice_kind, split, template_data
from bot.channels.wechat.crypto import CryptoError, MessageCrypto
from bot.channels.wechat.menu import MENU_FILE, MenuError, load_menu
from bot.channels.wechat.messages import WeChatMessage, fields
from chat.events import Button, Document, Reply
from wechat_stub import APP_ID, APP_SECRET, WeChatApiStub

# The decryption sample of WeChat's WXBizMsgCrypt SDK demo (official test vector).
SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_ENCRYPTED = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def test_decrypts_wechats_own_sample_message() -> None:
    crypto = MessageCrypto("spamtest", SAMPLE_KEY, "wx2c2769f8efd9abc2")
    xml = crypto.decrypt(
        SAMPLE_ENCRYPTED, "5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132"
    )
    message = WeChatMessage.parse(fields(xml))
    assert message.from_user == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert message.content == "abcdteT" and message.msg_id == "6054768590064713728"


def test_sample_is_refused_with_a_wrong_signature_or_for_another_app() -> None:
    args = ("5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132")
    with pytest.raises(CryptoError):
        MessageCrypto("spamtest", SAMPLE_KEY, "wx-someone-else").decrypt(SAMPLE_ENCRYPTED, *args)
    with pytest.raises(CryptoError):
        MessageCrypto("other", SAMPLE_KEY, "wx2c2769f8efd9abc2").decrypt(SAMPLE_ENCRYPTED, *args)


def test_an_encrypted_reply_decrypts_to_what_was_sent() -> None:
    crypto = MessageCrypto("tok", SAMPLE_KEY, APP_ID)
    encrypted, signature = crypto.encrypt(
        "<xml><Content>中文]]></Content></xml>".encode(), "1", "n"
    )
    assert (
        crypto.decrypt(encrypted, signature, "1", "n").decode().endswith("中文]]></Content></xml>")
    )


def test_replies_merge_into_one_message_with_numbered_options_and_links() -> None:
    document = Document("申请表.docx", b"PK\x03\x04", "application/docx")
    replies = [
        Reply("<b>第一</b> &amp; 二", [[Button("提交", "f:1"), Button("取消", "f:2")]]),
        Reply.doc(document, "随附申请表"),
        Reply("请选择", [[Button("我的申请", "m:cases")]]),
    ]
    composed = compose(replies, lambda doc: f"https://x/dl/{doc.name}")
    assert composed.parts == [
        "第一 & 二\n[1] 提交  [2] 取消\n\n随附申请表\n📎 申请表.docx\nhttps://x/dl/申请表.docx"
        "\n\n请选择\n[3] 我的申请"
    ]
    assert [b.data for b in composed.buttons] == ["f:1", "f:2", "m:cases"]


def test_long_texts_are_cut_at_line_ends_within_wechats_limit() -> None:
    text = "\n".join(f"第{n}行：" + "字" * 100 for n in range(40))
    parts = split(text)
    assert len(parts) > 1 and all(len(p.encode()) <= TEXT_LIMIT for p in parts)
    assert "\n".join(parts) == text
    assert all(len(p.encode()) <= TEXT_LIMIT for p in split("长" * 3000))


def test_notice_kinds_and_template_fields() -> None:
    upload = [[Button("上传材料", "u:start:BDB-2026-000001")]]
    assert notice_kind("case:BDB-2026-000001:event:4:applicant", upload) == "supplement"
    assert notice_kind("case:BDB-2026-000001:event:9:applicant", [[Button("5分", "r:B:5")]]) == (
        "followup"
    )
    assert notice_kind("case:BDB-2026-000001:form:applicant", []) == "form"
    assert notice_kind("case:BDB-2026-000001:item:3:done:applicant", []) == "case"
    assert notice_kind("announcement:4:applicant:9", []) == "announcement"
    text = "✅ 申请 <b>BDB-2026-000001</b> 已受理。\n经办人：李娜"
    data = template_data(text, "2026-11-29 10:00", "template")
    assert data == {
        "first": "✅ 申请 BDB-2026-000001 已受理。",
        "keyword1": "BDB-2026-000001",
        "keyword2": "2026-11-29 10:00",
        "remark": "经办人：李娜",
    }
    short = template_data(text, "2026-11-29 10:00", "subscribe")
    assert len(short["thing1"]) <= 20 and short["character_string2"] == "BDB-2026-000001"


def test_the_shipped_menu_fits_wechats_limits_and_bad_ones_are_refused(tmp_path: Path) -> None:
    menu = load_menu(MENU_FILE)
    entries = [sub for e in menu["button"] for sub in e.get("sub_button", [e])]
    assert [(e["name"], e["key"]) for e in entries] == [
        ("我要咨询", "m:ask"),
        ("申请帮代办", "m:apply"),
        ("预约洽谈", "m:book"),
        ("我的申请", "m:cases"),
        ("我的预约", "m:bookings"),
    ]
    too_many = tmp_path / "menu.yaml"
    too_many.write_text(
        "button:\n" + "".join(f"  - {{type: click, name: 菜单{n}, key: k{n}}}\n" for n in range(4)),
        encoding="utf-8",
    )
    with pytest.raises(MenuError, match="1 to 3"):
        load_menu(too_many)
    long_name = tmp_path / "long.yaml"
    long_name.write_text("button:\n  - {type: click, name: 这个名字太长了啊, key: k}\n", "utf-8")
    with pytest.raises(MenuError, match="16 bytes"):
        load_menu(long_name)


def test_download_links_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    document = Document("表.docx", b"PK\x03\x04 content", "application/docx")
    links = DownloadLinks("secret", "https://bdb.test", tmp_path, ttl_seconds=3600)
    token = links.link(document).rsplit("/", 1)[1]
    opened = links.open(token)
    assert opened is not None and opened.path.read_bytes() == document.content
    assert DownloadLinks("other", "https://bdb.test", tmp_path, 3600).open(token) is None
    assert DownloadLinks("secret", "https://bdb.test", tmp_path, -1).open(token) is None


# -- the commands, against the stub ---------------------------------------------------------


@pytest.fixture
async def stub() -> AsyncIterator[WeChatApiStub]:
    api = WeChatApiStub()
    await api.server.start_server()
    yield api
    await api.server.close()


async def bangdaiban(stub: WeChatApiStub, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = os.environ | {
        "WECHAT_TOKEN": "t",
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_URL": stub.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
    }
    env.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_menu_command_publishes_the_yaml_menu(stub: WeChatApiStub, tmp_path: Path) -> None:
    code, output = await bangdaiban(stub, tmp_path, "wechat", "menu")
    assert code == 0, output
    assert "我要咨询 · 办事预约 · 我的" in output
    (call,) = stub.called("/cgi-bin/menu/create")
    keys = [s["key"] for b in call.body["button"] for s in b.get("sub_button", [b])]
    assert keys == ["m:ask", "m:apply", "m:book", "m:cases", "m:bookings"]


async def test_qr_command_creates_a_permanent_code_for_the_scene(
    stub: WeChatApiStub, tmp_path: Path
) -> None:
    code, output = await bangdaiban(stub, tmp_path, "wechat", "qr", "--scene", "窗口")
    assert code == 0, output
    (call,) = stub.called("/cgi-bin/qrcode/create")
    assert call.body["action_name"] == "QR_LIMIT_STR_SCENE"
    assert call.body["action_info"]["scene"]["scene_str"] == "窗口"
    assert "http://weixin.qq.com/q/" in output


async def test_serve_command_answers_the_verification_and_stops_on_sigterm(
    stub: WeChatApiStub, tmp_path: Path
) -> None:
    import signal
    import socket
    import time

    import aiohttp

    from wechat_stub import sign

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {
        "WECHAT_TOKEN": "servetoken",
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_URL": stub.url,
        "WEB_PUBLIC_URL": "https://bdb.test",
        "WEB_PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "FILES_DIR": str(tmp_path / "files"),
    }
    env.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "web", env=env, cwd=tmp_path
    )
    stamp, nonce = str(int(time.time())), "42"
    params = {"signature": sign("servetoken", stamp, nonce), "timestamp": stamp, "nonce": nonce}
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while True:
                try:
                    url = f"http://127.0.0.1:{port}/wechat"
                    async with session.get(url, params=params | {"echostr": "hi"}) as answer:
                        assert answer.status == 200 and await answer.text() == "hi"
                        break
                except aiohttp.ClientConnectionError:
                    assert process.returncode is None, "the server exited"
                    await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
