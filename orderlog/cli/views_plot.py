"""`analytics cancellations --plot FILE.png`: the groups as a chart for a report."""

from __future__ import annotations

from typing import Any

from orderlog.store.location import StoreError

SHOWN_GROUPS = 15
"""Bars on one chart at most (the rest are summed as "other"); days are all shown."""


def plot_groups(found: dict[str, Any], path: str) -> None:
    """Horizontal bars of cancellations per group, labelled with count and rate; a title with
    the window and the headline rate. Needs matplotlib (the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        from matplotlib import pyplot
    except ImportError:
        raise StoreError("--plot needs matplotlib: pip install 'orderlog[plot]'") from None
    by = found["by"]
    groups = sorted(found["groups"], key=lambda group: str(group[by])) if by == "day" else _top(found["groups"], by)
    labels = [str(group[by]) for group in groups]
    counts = [group["cancelled"] for group in groups]
    figure, axes = pyplot.subplots(figsize=(9, max(3.0, 0.38 * len(groups) + 1.6)), dpi=120)
    bars = axes.barh(labels, counts, color="#b5423a")
    axes.invert_yaxis()
    axes.bar_label(bars, labels=[_label(group) for group in groups], padding=3, fontsize=8)
    axes.set_xlabel("cancelled orders")
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(_title(found), fontsize=10, loc="left")
    axes.margins(x=0.18)
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise StoreError(f"cannot write the chart to {path}: {error.strerror or error}") from None
    finally:
        pyplot.close(figure)


def _top(groups: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    if len(groups) <= SHOWN_GROUPS:
        return groups
    rest = groups[SHOWN_GROUPS - 1 :]
    other = {by: f"{len(rest)} others", "cancelled": sum(group["cancelled"] for group in rest), "rate": None}
    return [*groups[: SHOWN_GROUPS - 1], other]


def _label(group: dict[str, Any]) -> str:
    rate = group.get("rate")
    return f"{group['cancelled']}" + ("" if rate is None else f"  ({rate:.1%})")


def _title(found: dict[str, Any]) -> str:
    window = f"{found['since'] or 'the beginning'} to {found['until'] or 'now'}"
    rate = found["cancellation_rate"]
    headline = f"{found['cancelled']:,} of {found['submitted']:,} orders cancelled" + (
        f" ({rate:.1%})" if rate is not None else ""
    )
    return f"Cancellations by {found['by']}, {window}\n{headline}"
