"""The 操作日志 as rows and as CSV, for `bangdaiban audit` and /desk/audit's export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from dialogs.texts import label, labels
from storage.audit import CHINA, Line

CHINA_FORMAT = "%Y-%m-%d %H:%M:%S"
HEADER = (
    "时间",
    "人员",
    "角色",
    "单位",
    "第三方机构",
    "操作",
    "申请编号",
    "重点项目",
    "字段",
    "渠道",
    "地址",
)


def action_label(action: str) -> str:
    """The action's Chinese name where it has one (labels.yaml), else its code."""
    return labels("audit_actions").get(action, action)


def row(line: Line) -> list[str]:
    record = line.record
    return [
        record.at.astimezone(CHINA).strftime(CHINA_FORMAT),
        line.person or "",
        label("roles", record.role) if record.role else record.actor_kind,
        line.unit or "",
        str(record.agency_id or ""),
        action_label(record.action),
        record.case_number or "",
        str(record.key_project_id or ""),
        " ".join(record.fields or []),
        record.channel or "",
        record.client or "",
    ]


async def csv_chunks(lines: AsyncIterator[Line], batch: int = 500) -> AsyncIterator[str]:
    """The header, then the records as CSV text a batch of lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    count = 0
    async for line in lines:
        writer.writerow(row(line))
        count += 1
        if count % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
