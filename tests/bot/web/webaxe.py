"""axe-core (the copy axe-playwright-python ships, no network) run in the page: the WCAG 2.1
A/AA rules, violations as short readable lines."""

from __future__ import annotations

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
_axe = Axe()


async def violations(page: Page) -> list[str]:
    """One line per violated rule: its id, impact and the first offending elements."""
    options = {"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    results = await _axe.run(page, options=options)
    found = results.response["violations"]
    return [
        f"{v['id']} ({v['impact']}): " + " | ".join(n["target"][0] for n in v["nodes"][:3])
        for v in found
    ]
