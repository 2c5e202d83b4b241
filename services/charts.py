"""Charts drawn on the server as SVG geometry (the page's CSP allows no script or inline
style; SVG presentation attributes are fine): bars and lines, each with the numbers it
shows, so the template puts the same numbers in a table beneath it."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 56  # room for the axis labels
COLOURS = ("#1f5fa8", "#d9822b", "#3a9a5b", "#b8434a", "#7a5aa6")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]
    points: str  # "x,y x,y …" for <polyline>; gaps leave a value out
    colour: str


@dataclass(frozen=True)
class Tick:
    value: float
    y: float


@dataclass(frozen=True)
class Chart:
    """One chart: `kind` bar or line, its title, the labels along x, and the shapes."""

    kind: str
    title: str
    labels: list[str]
    label_x: list[float]
    bars: list[Bar]
    series: list[Series]
    ticks: list[Tick]
    unit: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    base_y: float = HEIGHT - BOTTOM
    colours: tuple[str, ...] = COLOURS


def _scale(top: float) -> tuple[float, list[Tick]]:
    """A rounded maximum for the axis and four ticks up to it."""
    if top <= 0:
        top = 1
    step = 1.0
    while top / step > 5:
        step *= 2 if str(int(step))[0] in "15" else 2.5
    ceiling = step * -(-top // step)
    span = HEIGHT - TOP - BOTTOM
    ticks = [Tick(step * i, HEIGHT - BOTTOM - span * step * i / ceiling)
             for i in range(int(ceiling / step) + 1)]  # fmt: skip
    return ceiling, ticks


def bar_chart(title: str, rows: list[tuple[str, float]], unit: str = "") -> Chart:
    """Vertical bars, one per (label, value)."""
    ceiling, ticks = _scale(max((value for _, value in rows), default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(rows), 1)
    span = HEIGHT - TOP - BOTTOM
    bars = []
    for index, (label, value) in enumerate(rows):
        height = span * value / ceiling
        x = LEFT + slot * index + slot * 0.15
        bars.append(Bar(label, value, x, HEIGHT - BOTTOM - height, slot * 0.7, height))
    centres = [LEFT + slot * (i + 0.5) for i in range(len(rows))]
    return Chart("bar", title, [label for label, _ in rows], centres, bars, [], ticks, unit)


def line_chart(
    title: str, labels: list[str], named: list[tuple[str, list[float | None]]], unit: str = ""
) -> Chart:
    """Lines over the labels (months), one per named series; None leaves a gap."""
    values = [v for _, series in named for v in series if v is not None]
    ceiling, ticks = _scale(max(values, default=0))
    step = (WIDTH - LEFT - RIGHT) / max(len(labels) - 1, 1)
    xs = [LEFT + step * i for i in range(len(labels))]
    span = HEIGHT - TOP - BOTTOM
    drawn = []
    for index, (name, series) in enumerate(named):
        points = " ".join(
            f"{xs[i]:.1f},{HEIGHT - BOTTOM - span * v / ceiling:.1f}"
            for i, v in enumerate(series)
            if v is not None
        )
        drawn.append(Series(name, series, points, COLOURS[index % len(COLOURS)]))
    return Chart("line", title, labels, xs, [], drawn, ticks, unit)
