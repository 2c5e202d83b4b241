"""Requests aiohttp cannot even parse (a request line over 8 KB, a malformed header) are
answered 400 by aiohttp itself, which logs each with a traceback at ERROR: a stranger's
mistake reads like our failure. This filter turns those records into one warning line."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ClientMistakes(logging.Filter):
    """Keeps aiohttp's record of a 4xx parse error, as a warning without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            record.msg = f"{record.getMessage()}: {type(error).__name__} {error.code}"
            record.args = ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_mistakes() -> None:
    """Install the filter on aiohttp's server logger, once per process."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientMistakes) for f in logger.filters):
        logger.addFilter(ClientMistakes())
