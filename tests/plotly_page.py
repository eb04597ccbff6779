"""Plotly figures drawn by the real plotly.js (the copy the plotly package ships) in chromium, and
measured there: where a shape landed in data units, which legend entries were drawn, whether
two drawn elements overlap. Python-side assertions on a spec only restate what the code wrote;
these check what plotly.js made of it."""

from __future__ import annotations

import json
from typing import Any

MEASURE = """([spec, width]) => {
    const gd = document.getElementById('plot');
    gd.innerHTML = '';
    return Plotly.newPlot(gd, spec.data, Object.assign({}, spec.layout, {width}),
                          {staticPlot: true}).then(() => {
        const full = gd._fullLayout, ya = full.yaxis, xa = full.xaxis;
        const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
                            return [r.left, r.top, r.right, r.bottom]; };
        const shapes = [...gd.querySelectorAll('.shapelayer path')].map(p => {
            const ys = (p.getAttribute('d').match(/[-0-9.]+/g) || []).map(Number);
            return ya.p2d(ys[1] - ya._offset);   // "M x0,y0 H x1": y0 in pixels
        });
        return {
            shapes,
            yRange: ya.range.slice(), xRange: xa.range.slice(), yType: ya.type,
            legend: [...gd.querySelectorAll('.legend .traces .legendtext')].map(t => t.textContent),
            legendBox: box(gd.querySelector('.legend')),
            titleBox: box(gd.querySelector('.gtitle')),
            annotationBoxes: [...gd.querySelectorAll('.annotation')].map(box),
            plotBox: [xa._offset, ya._offset, xa._offset + xa._length, ya._offset + ya._length]
                .map((v, i) => v + (i % 2 ? gd.getBoundingClientRect().top
                                             : gd.getBoundingClientRect().left)),
        };
    });
}"""


def open_plotly_page(browser):
    import plotly.offline

    page = browser.new_page()
    page.set_content('<div id="plot"></div>')
    page.add_script_tag(content=plotly.offline.get_plotlyjs())
    return page


def measure(page, spec: dict[str, Any], width: int = 700) -> dict[str, Any]:
    """Draw `spec` (plotly JSON) `width` px wide and return what plotly.js drew (see MEASURE)."""
    return page.evaluate(MEASURE, [json.loads(json.dumps(spec)), width])


def overlap(a, b) -> bool:
    return bool(a and b) and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
