"""requirements.lock pins every runtime dependency of pyproject.toml, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_locked_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, flags=re.MULTILINE))
    locked = {canonical(name): version for name, version in pinned.items()}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonical(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]}: `make lock`"
    body = "\n".join(line for line in lock.splitlines() if not line.startswith("#"))
    blocks = re.split(r"\n(?=\S)", body.strip())
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
