"""How an account's prospects spread over grades and scores: two grouped queries and a bar chart.

Both queries run on the (account, grade) and (account, score) indexes of ProspectScore and
return one row per group, so the page costs the same at a hundred prospects or a million.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, Value, When

from scoring.models import GradeBand, ProspectScore

BUCKET_WIDTH = 10
BUCKETS_ABOVE_ZERO = 10  # 0-9 ... 90-99, then one bucket for 100 and more

# Chart geometry, in SVG user units.
CHART_WIDTH = 600
CHART_HEIGHT = 180
LABEL_HEIGHT = 20
BAR_GAP = 4


@dataclass(frozen=True)
class GradeCount:
    name: str
    min_score: int
    count: int


@dataclass(frozen=True)
class Bucket:
    label: str
    count: int


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float
    label_x: float


@dataclass(frozen=True)
class Distribution:
    grades: list[GradeCount]
    buckets: list[Bucket]
    total: int

    @property
    def bars(self) -> list[Bar]:
        return histogram_bars(self.buckets)


def grade_counts(account_id: int) -> list[GradeCount]:
    """Prospects per band, lowest band first; a grade no band has any more is listed after them."""
    counts = dict(
        ProspectScore.objects.filter(account_id=account_id)
        .values("grade")
        .annotate(n=Count("pk"))
        .values_list("grade", "n")
    )
    rows = [
        GradeCount(name, min_score, counts.pop(name, 0))
        for name, min_score in GradeBand.objects.filter(account_id=account_id)
        .order_by("min_score")
        .values_list("name", "min_score")
    ]
    rows.extend(GradeCount(name or "(none)", 0, count) for name, count in sorted(counts.items()))
    return rows


def score_distribution(account_id: int) -> Distribution:
    grades = grade_counts(account_id)
    bucket = Case(
        When(score__lt=0, then=Value(-1)),
        When(score__gte=BUCKET_WIDTH * BUCKETS_ABOVE_ZERO, then=Value(BUCKETS_ABOVE_ZERO)),
        default=F("score") / BUCKET_WIDTH,  # integer division: 0..9 -> 0, 10..19 -> 1, ...
        output_field=IntegerField(),
    )
    counts = dict(
        ProspectScore.objects.filter(account_id=account_id)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"))
        .values_list("bucket", "n")
    )
    return Distribution(grades=grades, buckets=_buckets(counts), total=sum(row.count for row in grades))


def _buckets(counts: dict[int, int]) -> list[Bucket]:
    buckets = []
    if counts.get(-1):
        buckets.append(Bucket("below 0", counts[-1]))
    for index in range(BUCKETS_ABOVE_ZERO):
        low = index * BUCKET_WIDTH
        buckets.append(Bucket(f"{low}–{low + BUCKET_WIDTH - 1}", counts.get(index, 0)))
    buckets.append(Bucket(f"{BUCKET_WIDTH * BUCKETS_ABOVE_ZERO}+", counts.get(BUCKETS_ABOVE_ZERO, 0)))
    return buckets


def histogram_bars(buckets: list[Bucket]) -> list[Bar]:
    """Bar geometry for the SVG histogram: heights relative to the largest bucket."""
    if not buckets:
        return []
    tallest = max(bucket.count for bucket in buckets) or 1
    slot = CHART_WIDTH / len(buckets)
    plot_height = CHART_HEIGHT - LABEL_HEIGHT
    bars = []
    for index, bucket in enumerate(buckets):
        height = round(plot_height * bucket.count / tallest, 1)
        x = round(index * slot + BAR_GAP / 2, 1)
        bars.append(
            Bar(
                label=bucket.label,
                count=bucket.count,
                x=x,
                y=round(plot_height - height, 1),
                width=round(slot - BAR_GAP, 1),
                height=height,
                label_x=round(index * slot + slot / 2, 1),
            )
        )
    return bars
