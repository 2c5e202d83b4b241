"""Settings: the only place that reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bangdaiban.db"


class SettingsError(Exception):
    """A setting has a bad value; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    telegram_bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_library: Literal["aiogram", "ptb"] = "ptb"  # see docs/benchmarks.md
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(8080, ge=0, le=65535)  # 0: any free port
    log_level: str = "INFO"
    files_dir: Path = Path("./var/files")
    form_font_path: Path | None = None
    state_ttl_seconds: int = Field(7 * 24 * 3600, ge=3600, le=90 * 24 * 3600)
    # Conversation state without Redis: a SQLite file (unset: beside a SQLite database file).
    state_path: Path | None = None
    redis_max_connections: int = Field(50, ge=2, le=10_000)
    db_pool_size: int = Field(10, ge=1, le=1000)
    # Updates per user per flood window; the next one gets one warning.
    flood_limit: int = Field(20, ge=3, le=10_000)
    flood_window_seconds: float = Field(10.0, ge=1, le=3600)
    # Outgoing messages per second in total, all workers; 0: no limit.
    send_rate_per_second: float = Field(30.0, ge=0, le=10_000)
    # Library loggers (sqlalchemy, aiosqlite …) stay at WARNING unless named here.
    log_libraries: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = Field(8000, ge=0, le=65535)
    web_base_path: str = ""  # the path prefix a reverse proxy serves the web chat under
    web_public_url: str | None = None  # the address people open (QR codes); default: host+port
    web_secret: str | None = None  # signs cookies; unset: kept in var/web-secret
    web_trust_proxy: bool = False  # believe X-Forwarded-Proto/-For/-Host from the proxy
    web_origins: str = ""  # extra allowed websocket origins, comma separated
    # A browser bound by a staff member stays signed in this long after its last use.
    web_staff_session_days: int = Field(30, ge=1, le=365)
    # Requests and messages per IP per web_ip_window_seconds.
    web_ip_limit: int = Field(120, ge=1, le=1_000_000_000)
    web_ip_window_seconds: float = Field(60.0, ge=1, le=3600)
    # How often a web process looks for notices nobody woke it for (on PostgreSQL, NOTIFY
    # wakes it at once; this is the safety net, and the only way on SQLite).
    web_poll_seconds: float = Field(1.0, ge=0.05, le=3600)
    run_worker: bool = True  # `run` delivers and schedules too (embedded); false with a worker
    ops_port: int | None = None  # /healthz, /readyz, /metrics; unset: no ops server
    ops_host: str = "0.0.0.0"
    log_format: str = "auto"  # json, console, or auto (console on a terminal, else json)
    retention_closed_cases_days: int = 3 * 365
    retention_answered_questions_days: int = 365
    retention_files_days: int = 365
    retention_outbox_text_days: int = 30
    # 操作日志 kept this long (等级保护 2.0 / 网络安全法 Art. 21: at least six months).
    audit_retention_days: int = Field(730, ge=180, le=36500)
    # Lead-unit admins are warned this many working days before an agency's contract ends.
    agency_warning_workdays: int = Field(10, ge=1, le=60)
    audit_page_rows: int = Field(200, ge=10, le=2000)  # 操作日志 rows on one /desk/audit page
    download_secret: str | None = None  # signs download links; unset: derived from WeChat's
    download_ttl_seconds: int = 3 * 24 * 3600
    wechat_token: str | None = None
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = None
    wechat_aes_key: str | None = None  # the 43-character EncodingAESKey (安全模式)
    wechat_api_url: str = "https://api.weixin.qq.com"
    wechat_notice_api: str = "template"  # template (模板消息) | subscribe (订阅通知)
    wechat_templates: dict[str, str] = {}  # notice kind -> template id, JSON in the environment
    wechat_reply_within: float = 4.0  # seconds the callback waits to answer passively
    # With an AES key, plaintext callbacks are refused (WeChat's 安全模式 and 兼容模式 both post
    # encrypt_type=aes); this accepts them too, only while the console is switched over from
    # 明文模式: a plaintext body is signed by nothing, whoever logged a query could write it.
    wechat_accept_plaintext: bool = False
    # Seconds a callback's timestamp may differ from our clock; its (timestamp, nonce) is
    # accepted once within that window.
    wechat_max_age: int = Field(300, ge=30, le=3600)
    # (timestamp, nonce) pairs remembered in memory on the embedded default (Redis: no cap).
    wechat_nonce_cache: int = Field(100_000, ge=1000, le=10_000_000)
    wechat_body_limit: int = Field(64 * 1024, ge=4096, le=1024 * 1024)  # bytes per callback
    # WeCom (企业微信) / 政务微信 self-built app for staff; unset WECOM_CORP_ID: no WeCom.
    wecom_corp_id: str | None = None
    wecom_agent_id: int | None = Field(None, ge=1)
    wecom_secret: str | None = None
    wecom_token: str | None = None  # the callback's Token
    wecom_aes_key: str | None = None  # the callback's 43-character EncodingAESKey
    wecom_api_url: str = "https://qyapi.weixin.qq.com"  # 政务微信: the deployment's own host
    wecom_oauth_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    # WeCom drops what exceeds 30 messages a minute or 1,000 an hour to one member (per app).
    wecom_member_per_minute: int = Field(30, ge=1, le=10_000)
    wecom_member_per_hour: int = Field(1000, ge=1, le=100_000)
    wecom_send_rate_per_second: float = Field(20.0, ge=0, le=10_000)  # all members; 0: none
    wecom_duplicate_check_seconds: int = Field(1800, ge=1, le=4 * 3600)  # a resend is dropped
    wecom_reply_within: float = Field(4.0, gt=0, le=4.5)  # WeCom retries after 5 s
    wecom_callback_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # Uploads (补正): bytes per file, counted while it is received; for Office files (zips)
    # the inflated bytes in all, the entries, the inflation ratio of an entry; and how many
    # files are checked at once (each check takes a worker thread, never the event loop).
    upload_max_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    office_max_unpacked_bytes: int = Field(100 * 1024 * 1024, ge=1024 * 1024, le=2**31)
    office_max_entries: int = Field(1000, ge=10, le=65_000)
    office_max_ratio: int = Field(100, ge=10, le=100_000)
    upload_checks_at_once: int = Field(2, ge=1, le=64)
    open_questions_limit: int = Field(5, ge=1, le=1000)  # unanswered questions per applicant
    daily_applications_limit: int = Field(3, ge=1, le=1000)  # applications per applicant per day
    # Wrong 查询码 accepted per case (whoever sends them) and per chat within the window;
    # then that case (or chat) is refused until the window has passed since the last one.
    query_code_limit: int = Field(10, ge=1, le=1000)
    query_code_window_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    # 差评: working days for 回访核实 and for 整改 and 反馈 to the enterprise (some provinces: 5).
    bad_rating_verify_days: int = Field(1, ge=1, le=30)
    bad_rating_fix_days: int = Field(15, ge=1, le=60)
    stats_max_days: int = Field(3 * 366, ge=31, le=20 * 366)  # the longest range /desk/stats takes
    # The monthly 工作简报 to the lead units' administrators: from this hour (China time) on
    # the first working day of the month, in this format (docx: tables and chart images).
    monthly_report_hour: int = Field(9, ge=0, le=23)
    monthly_report_format: Literal["docx", "xlsx"] = "docx"
    # A one-time rating link (sent with the delivered notice) opens the rating for this many
    # days; its form's body is read up to RATING_FORM_BYTES (1,000 characters: ~9 KB encoded).
    rating_link_days: int = Field(30, ge=1, le=366)
    # Usable rating links a case may hold: each printed form of a delivered case issues one
    # (its QR code); beyond this the form is printed without it (the chat still rates).
    rating_links_per_case: int = Field(20, ge=1, le=1000)
    rating_form_bytes: int = Field(16 * 1024, ge=1024, le=256 * 1024)
    # 预约洽谈: cancel or move up to this many hours before; bookable days ahead; the least
    # notice for a new booking; upcoming bookings per applicant; slots offered when taken.
    booking_change_hours: int = Field(2, ge=0, le=72)
    booking_days_ahead: int = Field(14, ge=1, le=60)
    booking_lead_minutes: int = Field(60, ge=0, le=24 * 60)
    booking_open_limit: int = Field(3, ge=1, le=100)
    booking_offers: int = Field(5, ge=1, le=10)
    # 上门服务: how long a visit is planned for; how far ahead it may be proposed.
    visit_minutes: int = Field(120, ge=15, le=8 * 60)
    visit_days_ahead: int = Field(30, ge=1, le=180)
    # 联席会议: the longest meeting in room slots; agenda candidates offered to the caller.
    meeting_max_slots: int = Field(4, ge=1, le=12)
    meeting_agenda_choices: int = Field(10, ge=1, le=30)
    # Rows of each kind on one page of the web work list (/desk); the next page by keyset.
    desk_page_size: int = Field(50, ge=5, le=500)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        if url.drivername not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise ValueError("use sqlite+aiosqlite:///… or postgresql+asyncpg://…")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db")
        return value

    @field_validator("state_path", mode="before")
    @classmethod
    def _state_path(cls, value: object) -> object:
        return None if value == "" else value  # STATE_PATH= means unset, not the current directory

    @field_validator("wechat_aes_key")
    @classmethod
    def _wechat_aes_key(cls, value: str | None) -> str | None:
        if value and len(value) != 43:
            raise ValueError("the EncodingAESKey has 43 characters")
        return value or None

    @field_validator("wecom_aes_key")
    @classmethod
    def _wecom_aes_key(cls, value: str | None) -> str | None:
        if value and len(value) != 43:
            raise ValueError("the EncodingAESKey has 43 characters")
        return value or None

    @field_validator("wechat_notice_api")
    @classmethod
    def _wechat_notice_api(cls, value: str) -> str:
        if value not in {"template", "subscribe"}:
            raise ValueError("use template or subscribe")
        return value

    @field_validator(
        "telegram_api_url", "webhook_url", "wechat_api_url", "wecom_api_url", "wecom_oauth_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("web_base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        path = value.strip().strip("/")
        if any(part in {"", ".", ".."} for part in path.split("/")) and path:
            raise ValueError("use a path like /chat")
        return f"/{path}" if path else ""

    @field_validator("web_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") + "/" if value else None

    @property
    def web_url(self) -> str:
        """Where people open the web chat (ends with /)."""
        if self.web_public_url:
            return self.web_public_url
        return f"http://{self.web_host}:{self.web_port}{self.web_base_path}/"

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in {"auto", "json", "console"}:
            raise ValueError("use json, console or auto")
        return value.lower()

    @field_validator("ops_port")
    @classmethod
    def _ops_port(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 65535:
            raise ValueError("use a port from 1 to 65535 (0: any free port)")
        return value

    @field_validator(
        "retention_closed_cases_days",
        "retention_answered_questions_days",
        "retention_files_days",
        "retention_outbox_text_days",
    )
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 1 <= value <= 36500:
            raise ValueError("use a number of days from 1 to 36500")
        return value

    @property
    def wecom_member_spacing(self) -> float:
        """Seconds between two messages to one WeCom member: within both of its limits."""
        return max(60.0 / self.wecom_member_per_minute, 3600.0 / self.wecom_member_per_hour)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def state_file(self) -> Path | None:
        """Where conversation state is kept without Redis: STATE_PATH, else beside the SQLite
        database (bangdaiban.db → bangdaiban.state.db); None: in memory only."""
        if self.state_path is not None:
            return self.state_path
        url = make_url(self.database_url)
        if not url.drivername.startswith("sqlite") or url.database in {None, "", ":memory:"}:
            return None
        database = Path(url.database or "")
        return database.with_name(f"{database.stem}.state{database.suffix or '.db'}")


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning a validation failure into one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
