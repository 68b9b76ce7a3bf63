"""Small bar charts drawn as server-rendered SVG: no script, no library, no external request.

A chart is data first (:class:`BarChart`: bucket labels and one or more series); :func:`render_svg`
draws it. Every chart carries a text alternative: the SVG is ``role="img"`` with a ``<title>``
and a ``<desc>`` that sums it up in words, each bar has its own ``<title>`` (a tooltip on hover
and focus-free reading for screen readers), and the page shows the same numbers as a table
(:attr:`BarChart.rows`) for anyone who prefers or needs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# The drawing area, in SVG user units; the SVG scales to its container's width (viewBox).
WIDTH = 640
HEIGHT = 200
MARGIN_LEFT = 44
MARGIN_RIGHT = 8
MARGIN_TOP = 12
MARGIN_BOTTOM = 28
# Space between buckets, as a share of a bucket's width.
BUCKET_GAP = 0.25


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[int, ...]
    css_class: str  # colours live in static/css/sync.css, so they follow the page's palette

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class BarChart:
    """Buckets along the x axis (``labels``), one bar per series in each bucket."""

    chart_id: str  # unique in the page: the SVG's title and description are referenced by id
    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    label_every: int = 1  # write every n-th bucket label under the axis, so they never overlap

    def __post_init__(self) -> None:
        for series in self.series:
            if len(series.values) != len(self.labels):
                raise ValueError(
                    f"series {series.label!r} has {len(series.values)} values for {len(self.labels)} buckets"
                )

    @property
    def peak(self) -> int:
        return max((value for series in self.series for value in series.values), default=0)

    @property
    def rows(self) -> list[tuple[str, tuple[int, ...]]]:
        """(bucket label, one value per series): the chart as a table."""
        return [(label, tuple(series.values[i] for series in self.series)) for i, label in enumerate(self.labels)]

    def description(self) -> str:
        """The chart in one or two sentences, for the SVG's <desc> and anyone not seeing it."""
        if self.peak == 0:
            return f"Nothing in this period ({self.labels[0]} to {self.labels[-1]})." if self.labels else "No data."
        parts = []
        for series in self.series:
            if series.total == 0:
                parts.append(f"{series.label}: none")
                continue
            top = max(range(len(series.values)), key=lambda i: series.values[i])
            parts.append(
                f"{series.label}: {intcomma(series.total)} in total, most in {self.labels[top]} "
                f"({intcomma(series.values[top])})"
            )
        return f"From {self.labels[0]} to {self.labels[-1]}. " + "; ".join(parts) + "."


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``: a y-axis maximum people can read."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def render_svg(chart: BarChart) -> SafeString:
    """The chart as an inline ``<svg>`` element. Every bucket gets one ``<rect class="bar …">``
    per series, zero-height ones included, so the drawing always has len(labels) * len(series)
    bars in a fixed place."""
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    baseline = MARGIN_TOP + plot_height
    top = _nice_ceiling(chart.peak)
    buckets = max(len(chart.labels), 1)
    bucket_width = plot_width / buckets
    bar_width = bucket_width * (1 - BUCKET_GAP) / max(len(chart.series), 1)
    title_id, desc_id = f"{chart.chart_id}-title", f"{chart.chart_id}-desc"

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{title_id} {desc_id}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(chart.description())}</desc>',
        # Axis and gridlines at 0, half and the top, labelled on the left.
        *(
            f'<line class="chart__grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" '
            f'y1="{baseline - plot_height * share:.1f}" y2="{baseline - plot_height * share:.1f}"/>'
            f'<text class="chart__tick" x="{MARGIN_LEFT - 6}" y="{baseline - plot_height * share + 4:.1f}" '
            f'text-anchor="end">{escape(intcomma(round(top * share)))}</text>'
            for share in (0, 0.5, 1)
        ),
    ]
    for index, label in enumerate(chart.labels):
        x0 = MARGIN_LEFT + index * bucket_width + bucket_width * BUCKET_GAP / 2
        for offset, series in enumerate(chart.series):
            value = series.values[index]
            height = plot_height * value / top
            parts.append(
                f'<rect class="bar {escape(series.css_class)}" x="{x0 + offset * bar_width:.1f}" '
                f'y="{baseline - height:.1f}" width="{bar_width:.1f}" height="{height:.1f}">'
                f"<title>{escape(label)}: {escape(series.label)} {escape(intcomma(value))}</title></rect>"
            )
        if index % chart.label_every == 0:
            parts.append(
                f'<text class="chart__label" x="{x0 + bucket_width * (1 - BUCKET_GAP) / 2:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    # Every piece of text above went through escape(); the rest is numbers we formatted.
    return mark_safe("".join(parts))  # noqa: S308
