"""政策公告: subscriptions, segments, composing with a preview, queueing, the report."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.app import App
from domain.announcement_reports import report_finished
from storage.models import Applicant, OutboxMessage, OutboxStatus
from support import Chat, bind_staff, fill_application


async def announcement_rows(app: App) -> list[OutboxMessage]:
    async with app.services.db.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.idempotency_key.like("announcement:%"))
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


async def compose(admin: Chat, segment: str, topics: tuple[str, ...] = ()) -> None:
    await admin.say("/broadcast")
    await admin.say("新区产业扶持政策解读")
    await admin.say("即日起受理2026年度产业扶持资金申报，<详见办事指南>。")
    await admin.press(segment)
    if topics:
        for topic in topics:
            await admin.press(topic)
        await admin.press("完成")


async def test_opt_in_topics_and_opt_out(app: App) -> None:
    user = Chat(app.router, "ent")
    await user.say("/subscribe")
    assert "已为您订阅" in user.text
    await user.press("☑ 审批改革")
    assert "☐ 审批改革" in [b.label for b in user.buttons]
    async with app.services.db.sessions() as session:
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "ent"))
        assert applicant is not None
    assert applicant.subscribed and applicant.topics == ["industry_policy", "service_guide"]
    await user.say("/unsubscribe")
    assert "已退订" in user.text
    async with app.services.db.sessions() as session:
        applicant = await session.scalar(select(Applicant).where(Applicant.chat_id == "ent"))
    assert applicant is not None and not applicant.subscribed


async def test_only_admins_broadcast(app: App) -> None:
    window = await bind_staff(app, "李娜")
    await window.say("/broadcast")
    assert "没有执行该操作的权限" in window.text
    enterprise = Chat(app.router, "ent")
    await enterprise.say("/broadcast")
    assert "没有执行该操作的权限" in enterprise.text
    assert await announcement_rows(app) == []


async def test_preview_count_and_queue_to_the_chosen_topic(app: App) -> None:
    for n, topics in enumerate((["industry_policy"], ["service_guide"], [])):
        user = Chat(app.router, f"sub{n}")
        await user.say("/subscribe")
        if topics == ["industry_policy"]:
            await user.press("☑ 审批改革")
            await user.press("☑ 办事指南")
        elif topics == ["service_guide"]:
            await user.press("☑ 产业政策")
            await user.press("☑ 审批改革")
    await Chat(app.router, "not-subscribed").say("/start")
    admin = await bind_staff(app, "陈晨")
    await compose(admin, "订阅用户", ("产业政策",))
    assert "📢 <b>新区产业扶持政策解读</b>" in admin.text
    assert "&lt;详见办事指南&gt;" in admin.text
    assert "将发送给 <b>2</b> 位用户" in admin.text
    await admin.press("提交")
    assert "共 2 位接收人" in admin.text
    rows = await announcement_rows(app)
    assert sorted(r.chat_id for r in rows) == ["sub0", "sub2"]
    assert rows[0].text.startswith("📢 <b>新区产业扶持政策解读</b>")


async def test_oversized_announcement_is_refused_before_anything_is_sent(app: App) -> None:
    admin = await bind_staff(app, "陈晨")
    await admin.say("/broadcast")
    await admin.say("标题")
    await admin.say("字" * 3801)
    assert "最多 3800 个字，您输入了 3801 个字" in admin.text
    assert await announcement_rows(app) == []


async def test_segments_and_the_delivery_report(app: App) -> None:
    applicant = Chat(app.router, "applicant")
    await fill_application(applicant, kind="重点产业项目")
    await applicant.press("提交")
    await Chat(app.router, "sub").say("/subscribe")
    admin = await bind_staff(app, "陈晨")
    await compose(admin, "重点项目企业")
    assert "将发送给 <b>1</b> 位用户" in admin.text
    await admin.press("提交")
    (row,) = await announcement_rows(app)
    assert row.chat_id == "applicant"
    assert await report_finished(app.services) == 0  # still pending
    async with app.services.db.transaction() as session:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(status=OutboxStatus.SENT)
        )
    assert await report_finished(app.services) == 1
    assert await report_finished(app.services) == 0
    async with app.services.db.sessions() as session:
        report = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("announcement:%:report"))
        )
    assert report is not None and report.chat_id == admin.user.chat_id
    assert "成功 1，失败 0" in report.text


async def test_enterprises_can_read_recent_announcements(app: App) -> None:
    user = Chat(app.router, "reader")
    await user.say("/news")
    assert "暂无政策公告" in user.text
    await user.say("/subscribe")
    admin = await bind_staff(app, "陈晨")
    await compose(admin, "订阅用户", ("办事指南",))
    await admin.press("提交")
    await user.say("/news")
    assert "新区产业扶持政策解读" in user.text
