"""Bar charts as inline SVG, drawn on the server: no script, no CDN, readable without either."""

from __future__ import annotations

from markupsafe import Markup, escape

ROW = 22
LABEL_WIDTH = 220
BAR_WIDTH = 420


def bar_chart(groups: list[tuple[str, int]], *, title: str) -> Markup:
    """One horizontal bar per (label, count), longest first as given; labels escaped."""
    if not groups:
        return Markup("")
    most = max(count for _label, count in groups) or 1
    height = ROW * len(groups) + 10
    rows = []
    for index, (label, count) in enumerate(groups):
        y = index * ROW + 5
        width = max(1, round(BAR_WIDTH * count / most)) if count else 0
        rows.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(label[:40])}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 3}" width="{width}" height="{ROW - 6}">'
            f"<title>{escape(label)}: {count:,}</title></rect>"
            f'<text x="{LABEL_WIDTH + width + 6}" y="{y + 15}">{count:,}</text>'
        )
    width = LABEL_WIDTH + BAR_WIDTH + 80
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>{"".join(rows)}</svg>'
    )
