"""Every Prometheus metric of the project, in one place (served by bot/ops.py at /metrics).

Counters are incremented where things happen (the router, the FAQ, the outbox worker); the
gauges describe the database and are refreshed from it when /metrics is scraped.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPDATES = Counter(
    "bdb_updates_handled_total",
    "Incoming updates handled by the core, by channel and outcome "
    "(ok, busy, flooded, limited: over the sender address's window).",
    ["channel", "outcome"],
)
UPDATE_SECONDS = Histogram(
    "bdb_update_seconds",
    "Time the core took to answer one update.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REPLIES = Counter(
    "bdb_replies_total",
    "Outbox notifications by channel and outcome "
    "(sent, rate_limited, waiting, retry, unreachable, dead).",
    ["channel", "outcome"],
)
REFUSED = Counter(
    "bdb_refused_messages_total",
    "Messages a channel refused for good, by what reached the person instead "
    "(plain text, apology, nothing) and whether it was a reply or a notice.",
    ["channel", "source", "instead"],
)
RATE_LIMITED = Counter(
    "bdb_rate_limited_total", "Answers 429 (retry after) from a channel.", ["channel"]
)
FAQ_VERDICTS = Counter(
    "bdb_faq_verdicts_total",
    "FAQ decisions on free-text questions (answered, choice, routed).",
    ["verdict"],
)
OUTBOX_BACKLOG = Gauge("bdb_outbox_backlog", "Pending outbox rows.", ["channel"])
OUTBOX_OLDEST = Gauge(
    "bdb_outbox_oldest_pending_seconds", "Age of the oldest pending outbox row.", ["channel"]
)
OUTBOX_DEAD = Gauge("bdb_outbox_dead", "Outbox rows given up on (DEAD).", ["channel"])
CASES = Gauge("bdb_cases", "Cases by status.", ["status"])
QUESTIONS_PAST_SLA = Gauge(
    "bdb_questions_past_sla",
    "Open questions escalated past the first responder's time limit.",
)
CALENDAR_DAYS = Gauge(
    "bdb_calendar_days_covered", "Days ahead covered by the official holiday calendar."
)
