"""A chart of services/charts.py drawn as PNG with Pillow, for the docx 工作简报: the same
geometry as the page's SVG, scaled up for print. Pillow draws it directly — no SVG rasteriser
(cairosvg needs the libcairo system library) and no plotting library."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

from dialogs.printable import find_cjk_font
from services.charts import Chart

SCALE = 2  # pixels per SVG unit: about 200 dpi at 16 cm wide
PAD = 24  # SVG units of room left and right: a month label is wider than the margin
AXIS, GRID, TEXT = "#555555", "#dddddd", "#222222"
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font(size: int) -> Font:
    """A CJK font when one is installed (the labels are Chinese), else Pillow's own."""
    found = find_cjk_font()
    if found is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(found), size)


def _number(value: float) -> str:
    return f"{value:g}"


def _at(x: float, y: float) -> tuple[float, float]:
    """SVG units to pixels, with PAD on each side for the end labels of a line chart."""
    return (x + PAD) * SCALE, y * SCALE


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, anchor: str) -> None:
    draw.text(_at(*xy), text, fill=TEXT, font=_font(11 * SCALE), anchor=anchor)


def png(chart: Chart) -> bytes:
    """The chart as PNG bytes."""
    image = Image.new("RGB", ((chart.width + 2 * PAD) * SCALE, chart.height * SCALE), "white")
    draw = ImageDraw.Draw(image)
    left, right = 48, chart.width - 16
    for tick in chart.ticks:
        draw.line([_at(left, tick.y), _at(right, tick.y)], fill=GRID, width=SCALE)
        _text(draw, (left - 6, tick.y), _number(tick.value) + chart.unit, "rm")
    draw.line([_at(left, chart.base_y), _at(right, chart.base_y)], fill=AXIS, width=SCALE)
    for x, name in zip(chart.label_x, chart.labels, strict=True):
        _text(draw, (x, chart.base_y + 8), name, "mt")
    for bar in chart.bars:
        if bar.height > 0:
            box = [*_at(bar.x, bar.y), *_at(bar.x + bar.width, bar.y + bar.height)]
            draw.rectangle(box, fill=chart.colours[0])
        _text(draw, (bar.x + bar.width / 2, bar.y - 3), _number(bar.value), "mb")
    for index, series in enumerate(chart.series):
        points = [
            _at(float(x), float(y)) for x, y in (pair.split(",") for pair in series.points.split())
        ]
        if len(points) > 1:
            draw.line(points, fill=series.colour, width=2 * SCALE, joint="curve")
        r = 3 * SCALE
        for x, y in points:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=series.colour)
        # The legend under the month labels, one entry per series.
        key_x, key_y = left + index * 160, chart.height - 18
        draw.rectangle([*_at(key_x, key_y - 5), *_at(key_x + 10, key_y + 5)], fill=series.colour)
        _text(draw, (key_x + 14, key_y), series.name, "lm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
