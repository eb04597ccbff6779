"""A script for the page's <head>: free the plotly charts Gradio throws away, and give every
chart a download button for SVG beside plotly's own for PNG.

Gradio's gr.Plot mounts a new plotly chart for every new value and drops the old one from the
page, but never calls `Plotly.purge` on it; plotly's `responsive` option (which Gradio sets)
keeps a window "resize" listener that holds the old chart, its SVG and its data alive. A live
training run redraws a chart about twice a second, so the browser tab grew by hundreds of MB a
minute (measured with bench/page_weight.py: ~290 detached DOM nodes per redraw, ~37,000 after a
minute of training; with this script, ~1,800 and flat).

The script wraps `Plotly.react` (Gradio draws every chart with it) to remember each chart's
element, and every two seconds purges the remembered ones no longer in the page. The same
wrapper adds the SVG button to the chart's toolbar (issue 35: figures for slides and papers):
plotly draws both files in the browser, with no network.
"""

from __future__ import annotations

PURGE_INTERVAL_MS = 2000

PLOT_CLEANUP_HEAD = """<script>
(() => {
  const drawn = new Set();
  let plotly;
  const remember = P => {
    if (!P || P.__robertaLabPurges || typeof P.react !== "function") return P;
    const react = P.react;
    const svg = {
      name: "Download plot as SVG", icon: P.Icons && P.Icons.disk,
      click: chart => P.downloadImage(chart, {format: "svg", filename: "roberta-lab-chart"}),
    };
    P.react = function (element, data, layout, config, ...rest) {
      drawn.add(element);
      window.robertaLabChartDraws = (window.robertaLabChartDraws || 0) + 1;  // for tests
      config = {...(config || {}), modeBarButtonsToAdd: [svg],
                toImageButtonOptions: {format: "png", filename: "roberta-lab-chart", scale: 2}};
      return react.call(this, element, data, layout, config, ...rest);
    };
    P.__robertaLabPurges = true;
    return P;
  };
  // Gradio's plotly bundle assigns window.Plotly when the first chart loads.
  Object.defineProperty(window, "Plotly", {configurable: true, get: () => plotly,
                                          set: value => { plotly = remember(value); }});
  setInterval(() => {
    for (const element of drawn) {
      if (element.isConnected) continue;
      drawn.delete(element);
      try { plotly.purge(element); } catch (error) { /* already gone */ }
    }
  }, PURGE_INTERVAL_MS);
})();
</script>""".replace("PURGE_INTERVAL_MS", str(PURGE_INTERVAL_MS))
