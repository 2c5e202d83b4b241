"""README.md works as written: each fenced block marked `runnable` runs from a fresh copy of the
repository, and the README and docs/ link only to what exists.

A block's info string says how it is run: ```` ```sh runnable ```` must exit 0 within
RUN_TIMEOUT, reading TYPED on its standard input as a person at the terminal would;
```` ```sh runnable serves ```` starts a server, which must print its address within
START_TIMEOUT and answer a GET there, and is then stopped. A comment `<!-- prints: TEXT -->` on
the line before the fence names what the output (or the served page) must contain, so a command
that does nothing and exits 0 (a make target gone missing) fails.

The copy holds the repository's files as `git ls-files` lists them (what a clone has,
uncommitted edits included) and a `.venv` whose `bin/` is this test's own environment, so
`make` finds it installed ("the venv already there") and the code run is the copy's own
(PYTHONPATH).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\S*)(.*)$")
PRINTS = re.compile(r"^<!-- prints: (.+) -->$")
TYPED = "/start\n"  # what a person types first in the console
ADDRESS = re.compile(r"https?://[^\s/]+(?:/\S*)?/")
RUN_TIMEOUT = 120.0  # seconds per block; a first start migrates and seeds the embedded database
START_TIMEOUT = 120.0
FRONT_PAGE_LINES = 250  # issue 26: a README a newcomer reads in five minutes
# Settings a developer's shell may export; the README's commands run on the embedded defaults.
ENVIRONMENT = ("DATABASE_URL", "REDIS_URL", "WEB_BASE_PATH", "WEB_PUBLIC_URL", "OPS_PORT")


@dataclass(frozen=True)
class Block:
    line: int
    info: tuple[str, ...]
    script: str
    prints: str | None = None

    @property
    def serves(self) -> bool:
        return "serves" in self.info


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with its info string split into words."""
    blocks: list[Block] = []
    opened: tuple[int, tuple[str, ...], str | None] | None = None
    body: list[str] = []
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence is None:
            if opened is not None:
                body.append(line)
        elif opened is None:
            prints = PRINTS.match(previous)
            info = (fence.group(1), *fence.group(2).split())
            opened, body = (number, info, prints.group(1) if prints else None), []
        else:
            blocks.append(Block(opened[0], opened[1], "\n".join(body), opened[2]))
            opened = None
        previous = line
    return blocks


def runnable_blocks() -> list[Block]:
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    return [block for block in blocks if "runnable" in block.info]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files in a new directory, with the venv installed as `make` expects."""
    target = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not in a clone either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    bin_dir = Path(sys.prefix) / "bin"
    assert (bin_dir / "bangdaiban").exists(), f"run the tests from the project's venv ({bin_dir})"
    (target / ".venv").mkdir()
    (target / ".venv" / "bin").symlink_to(bin_dir)
    (target / ".venv" / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    return target


def environment(clone: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env["PYTHONPATH"] = str(clone)  # the copy's code, as `pip install -e .` in a clone would
    # Another run on this machine may hold the default port 8000; the command prints its address.
    env["WEB_PORT"] = str(free_port())
    return env


def run_block(block: Block, clone: Path) -> str:
    """Run a block as a bash script in the copy; its output, or a failure naming the block."""
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.script],
        cwd=clone,
        env=environment(clone),
        input=TYPED,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=RUN_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"README.md:{block.line} exited {done.returncode}:\n{output}"
    assert "Traceback" not in output, f"README.md:{block.line}:\n{output}"
    return output


def serve_block(block: Block, clone: Path) -> str:
    """Start a server block, wait for its address, GET it, stop it; the page it served."""
    log = clone / "serve.log"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            ["bash", "-e", "-c", block.script],
            cwd=clone,
            env=environment(clone),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server in one group, stopped together
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while (found := ADDRESS.search(output := log.read_text(encoding="utf-8"))) is None:
                assert process.poll() is None, f"README.md:{block.line} ended:\n{output}"
                assert time.monotonic() < deadline, f"README.md:{block.line} printed no address"
                time.sleep(0.2)
            with urllib.request.urlopen(found.group(0), timeout=30) as answer:
                assert answer.status == 200
                return str(answer.read().decode())
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_readme_marks_the_two_commands_runnable() -> None:
    scripts = [block.script for block in runnable_blocks()]
    assert any(block.serves and "make web" in block.script for block in runnable_blocks())
    assert any("make console" in script for script in scripts)


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda block: f"line{block.line}")
def test_runnable_block_works_as_written(block: Block, clone: Path) -> None:
    output = serve_block(block, clone) if block.serves else run_block(block, clone)
    if block.prints is not None:
        assert block.prints in output, f"README.md:{block.line} did not print {block.prints!r}"


def test_the_readme_is_a_front_page() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < FRONT_PAGE_LINES


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _documents() -> list[Path]:
    return [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("document", _documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_links_between_documents_lead_somewhere(document: Path) -> None:
    broken = []
    text = document.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # an outside address
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.is_file():
            headings = re.findall(
                r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.MULTILINE
            )
            if anchor not in {_anchor(heading) for heading in headings}:
                broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)}: {broken}"


def test_the_changelog_releases_the_version_in_pyproject() -> None:
    """Keep a Changelog: Unreleased on top, then SemVer releases newest first, the newest being
    `version` in pyproject.toml."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", changelog, re.M)
    assert headings[0] == ("Unreleased", "")
    releases = [tuple(int(part) for part in name.split(".")) for name, _ in headings[1:]]
    assert all(len(release) == 3 for release in releases)
    assert all(date for _, date in headings[1:])
    assert releases == sorted(releases, reverse=True) and len(set(releases)) == len(releases)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert ".".join(map(str, releases[0])) == project["version"]
