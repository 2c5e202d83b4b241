"""aiohttp answers a malformed request (a header line over 8,190 bytes, a broken request
line) with 400 itself, and logs it as an error with a traceback: the client's mistake, not
ours. One INFO line instead, so errors in the log stay ours."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ClientMistakes(logging.Filter):
    """Turns aiohttp's record of a malformed request into one INFO line without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg = f"{record.msg} (malformed request: {type(exc).__name__})"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_mistakes() -> None:
    """Install the filter on aiohttp's server logger (once)."""
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientMistakes) for f in server.filters):
        server.addFilter(ClientMistakes())
