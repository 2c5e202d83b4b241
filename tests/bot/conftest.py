"""Fixtures of the channel tests."""

from __future__ import annotations

import pytest

LIBRARIES = ["aiogram", "ptb"]  # TELEGRAM_LIBRARY: the end-to-end tests run on each


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest) -> str:
    return str(request.param)
