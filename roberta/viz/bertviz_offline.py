"""bertviz's head view and model view, working with no network.

bertviz's HTML loads require.js, jQuery and d3 from cdnjs, which a workshop without network (or
a browser that blocks third parties) never gets. So each view becomes a standalone document:
jQuery and d3 v5 are inlined from installed Python packages (`xstatic-jquery` ships jQuery,
`mpld3` ships d3 v5; no JavaScript is copied into this repository), bertviz's require.js tag is
dropped, and a tiny `require`/`requirejs` stand-in hands bertviz the two globals it asks for.

`gr.HTML` does not run `<script>` tags, but a document inside `<iframe srcdoc="...">` does, so
`iframe_html` wraps the document in one. The frame is sandboxed with scripts only: the tokens
drawn in it come from visitors and checkpoints, so it gets an opaque origin and cannot reach the
page, its cookies or its storage. It therefore cannot resize itself either; it posts its height
to the page, where `FRAME_RESIZER_HEAD` (added to the page's head at launch) sets the height of
the frame the message came from.

bertviz imports IPython, so it is imported only when a view is drawn, never at app start.
"""

from __future__ import annotations

import html
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import torch

BERTVIZ_SCRIPT_OPEN = '<script type="text/javascript">'
REQUIRE_JS_TAG = ('<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/'
                  'require.min.js"></script>')
# Values are rounded before they are written into the page: 3 decimals are far below what a
# line's opacity can show and keep the page several times smaller.
DECIMALS = 3

# bertviz calls require.config({paths: {... cdn urls ...}}) and then
# requirejs(['jquery', 'd3'], function ($, d3) {...}); serve both from the inlined globals.
REQUIRE_STAND_IN = """
window.requirejs = window.require = function (names, callback) {
  var modules = {jquery: window.jQuery, d3: window.d3};
  callback.apply(window, names.map(function (name) { return modules[name]; }));
};
window.require.config = function () {};
"""

# Tell the page the height of what was drawn (bertviz sizes its SVG after rendering). The body's
# height, not the document's: the document is at least as tall as the frame, so measuring it
# would grow the frame a little more on every call.
FIT_FRAME = """
(function () {
  function fit() {
    if (window.parent === window) { return; }
    window.parent.postMessage({bertvizFrameHeight: document.body.scrollHeight}, '*');
  }
  window.addEventListener('load', fit);
  if (window.ResizeObserver) { new ResizeObserver(fit).observe(document.body); }
  setTimeout(fit, 300);
})();
"""
# The page's half: a sandboxed frame's message has origin "null", so the frame is recognised by
# its window instead, and only a bertviz frame is resized (16 px for the body's margins; at most
# 20,000 px, whatever a frame claims).
FRAME_RESIZER_HEAD = """<script>
window.addEventListener('message', function (event) {
  var height = event.data && event.data.bertvizFrameHeight;
  if (typeof height !== 'number' || !(height > 0)) { return; }
  var frames = document.querySelectorAll('iframe.bertviz-frame');
  for (var i = 0; i < frames.length; i++) {
    if (frames[i].contentWindow === event.source) {
      frames[i].style.height = Math.min(Math.ceil(height) + 16, 20000) + 'px';
    }
  }
});
</script>"""


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the Python package providing {module} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def jquery_js() -> str:
    """jQuery from the installed `xstatic-jquery` package."""
    path = _package_dir("xstatic.pkg.jquery") / "data" / "jquery.min.js"
    if not path.is_file():
        raise RuntimeError(f"jQuery not found at {path}: reinstall xstatic-jquery")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def d3_js() -> str:
    """d3 v5 from the installed `mpld3` package."""
    path = _package_dir("mpld3") / "js" / "d3.v5.min.js"
    if not path.is_file():
        raise RuntimeError(f"d3 v5 not found at {path}: reinstall mpld3")
    return path.read_text(encoding="utf-8")


def _script(code: str) -> str:
    # "</script" inside inlined code would end the tag early; minified libraries may contain it.
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def _neutralise_script_breaks(bertviz_html: str) -> str:
    """Tokens come from user text and bertviz writes them into its <script> as JSON, where
    "</script>" or "<!--" would end or derail the script (and "<script" could inject one). The
    view's own code has none of these, so every one is inside a string literal, where "\\x3c"
    reads as "<"."""
    start = bertviz_html.index(BERTVIZ_SCRIPT_OPEN) + len(BERTVIZ_SCRIPT_OPEN)
    end = bertviz_html.rindex("</script>")
    code = re.sub(r"<(?=/?script|!--)", r"\\x3c", bertviz_html[start:end], flags=re.IGNORECASE)
    return bertviz_html[:start] + code + bertviz_html[end:]


def offline_document(bertviz_html: str, title: str = "attention") -> str:
    """A standalone HTML document running bertviz's view with the libraries inlined."""
    if REQUIRE_JS_TAG not in bertviz_html or BERTVIZ_SCRIPT_OPEN not in bertviz_html:
        raise RuntimeError("bertviz's HTML no longer has the shape this module expects "
                           "(require.js tag, one inline script); check the bertviz version")
    body = _neutralise_script_breaks(bertviz_html.replace(REQUIRE_JS_TAG, ""))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            + _script(jquery_js()) + _script(d3_js()) + _script(REQUIRE_STAND_IN)
            + "<style>body{margin:4px;background:#fff;color:#111;"
              "font-family:Helvetica,Arial,sans-serif}</style>"
            + "</head><body>" + body + _script(FIT_FRAME) + "</body></html>")


def iframe_html(document: str, height: int, title: str) -> str:
    """A sandboxed iframe whose srcdoc is `document`, for gr.HTML: its scripts run, but in an
    opaque origin, with no access to the page."""
    return (f'<iframe class="bertviz-frame" title="{html.escape(title)}" '
            f'sandbox="allow-scripts" srcdoc="{html.escape(document, quote=True)}" '
            f'style="width:100%;height:{int(height)}px;border:0;overflow:auto"></iframe>')


def _per_layer(attentions: torch.Tensor) -> list[torch.Tensor]:
    """(L, nh, T, T) -> bertviz's list of L tensors shaped (1, nh, T, T), rounded."""
    if attentions.dim() != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"attentions must be (layers, heads, T, T), got "
                         f"{tuple(attentions.shape)}")
    # In float64: a float32 0.123 is written 0.12300000339746475, undoing the rounding.
    rounded = attentions.detach().double().cpu().round(decimals=DECIMALS)
    return [layer.unsqueeze(0) for layer in rounded]


def _check_tokens(attentions: torch.Tensor, tokens: list[str]) -> None:
    if len(tokens) != attentions.shape[-1]:
        raise ValueError(f"{len(tokens)} tokens for attention over {attentions.shape[-1]} "
                         f"positions")


# bertviz numbers layers and heads from 0; every other view here, and the Layer and Head boxes,
# from 1 (issue 33). These edits of its code make it count from 1 too; each must apply.
HEAD_VIEW_FROM_ONE = [('$("<option />").val(layer).text(layer)',
                       '$("<option />").val(layer).text(layer + 1)')]
MODEL_VIEW_FROM_ONE = [
    (".text(config.heads[i])", ".text(config.heads[i] + 1)"),
    (".text(config.layers[i])", ".text(config.layers[i] + 1)"),
    ("'Layer ' + config.layers[layerIndex] + \", Head \" + config.heads[headIndex]",
     "'Layer ' + (config.layers[layerIndex] + 1) + \", Head \" + (config.heads[headIndex] + 1)"),
]


def count_from_one(bertviz_html: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        if bertviz_html.count(old) != 1:
            raise RuntimeError(f"bertviz's code no longer has {old!r}; check the bertviz version")
        bertviz_html = bertviz_html.replace(old, new)
    return bertviz_html


def head_view_document(attentions: torch.Tensor, tokens: list[str]) -> str:
    """bertviz's head view (one layer, heads overlaid as coloured lines) as a document."""
    from bertviz import head_view

    _check_tokens(attentions, tokens)
    view = head_view(_per_layer(attentions), list(tokens), prettify_tokens=False,
                     html_action="return")
    return offline_document(count_from_one(view.data, HEAD_VIEW_FROM_ONE), "bertviz head view")


def model_view_document(attentions: torch.Tensor, tokens: list[str]) -> str:
    """bertviz's model view (every layer × head as a thumbnail) as a document."""
    from bertviz import model_view

    _check_tokens(attentions, tokens)
    view = model_view(_per_layer(attentions), list(tokens), prettify_tokens=False,
                      display_mode="light", html_action="return")
    return offline_document(count_from_one(view.data, MODEL_VIEW_FROM_ONE),
                            "bertviz model view")


def head_view_html(attentions: torch.Tensor, tokens: list[str]) -> str:
    """The head view in an iframe, sized for the number of tokens."""
    height = 110 + 24 * len(tokens)
    return iframe_html(head_view_document(attentions, tokens), height, "bertviz head view")


def model_view_html(attentions: torch.Tensor, tokens: list[str]) -> str:
    """The model view in an iframe; the frame grows to fit once drawn."""
    layers = attentions.shape[0]
    height = 80 + layers * 140
    return iframe_html(model_view_document(attentions, tokens), height, "bertviz model view")
