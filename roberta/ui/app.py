"""The RoBERTa Lab app: one Blocks with a tab per activity, each built by its own module.

Nothing trains or downloads here: building the app only loads the embedded default models
(small files in assets/), so `python app.py` serves its first page within seconds.
"""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from roberta.ui import registry, session_keep
from roberta.ui.attention_tab import build_attention_tab
from roberta.ui.common import guard_number_inputs, plain_request_errors
from roberta.ui.experiments_tab import build_experiments_tab
from roberta.ui.fill_mask_tab import build_fill_mask_tab
from roberta.ui.leave_guard import EarlyScriptMiddleware
from roberta.ui.limits import current_limits
from roberta.ui.masking_tab import build_masking_tab
from roberta.ui.model_tab import build_model_tab
from roberta.ui.plot_cleanup import PLOT_CLEANUP_HEAD
from roberta.ui.sentiment_tab import build_sentiment_tab
from roberta.ui.session_end import free_sessions_when_they_end
from roberta.ui.train_tab import build_train_tab
from roberta.ui.upload_files import no_empty_upload_files
from roberta.viz.bertviz_offline import FRAME_RESIZER_HEAD

TITLE = "RoBERTa Lab"
INTRO = ("# RoBERTa Lab\nTrain a tiny RoBERTa live, ask it to fill in blanks, classify "
         "sentiment, and look inside: attention heads and the dynamic masking that sets "
         "RoBERTa apart from BERT. Everything runs here, with no network.")
# (tab label, element id, builder), in the order the tabs appear.
TABS = [
    ("Train", "tab-train", build_train_tab),
    ("Experiments", "tab-experiments", build_experiments_tab),
    ("Fill-mask", "tab-fill-mask", build_fill_mask_tab),
    ("Sentiment", "tab-sentiment", build_sentiment_tab),
    ("Attention", "tab-attention", build_attention_tab),
    ("Masking", "tab-masking", build_masking_tab),
    ("Model", "tab-model", build_model_tab),
]
# Gradio keeps every upload and every file it serves in its cache: every 30 minutes, delete
# those over an hour old (runs read their uploads when they start; downloads are fetched at once).
CACHE_SWEEP = (30 * 60, 60 * 60)  # (how often, how old), in seconds
# Large, readable text for a projector; plots get room.
CSS = """
.gradio-container {max-width: 1400px !important;}
#fill-mask-results table {font-size: 15px;}
/* A phone (issue 33): plotly's toolbar covered the charts' titles; pinch to zoom instead. */
@media (max-width: 640px) {
  .js-plotly-plot .modebar-container {display: none !important;}
}
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP, analytics_enabled=False) as demo:
        # This browser's own models (registry) and training runs; its models are let go when
        # Gradio drops the state, which happens as soon as the visitor leaves (session_end),
        # unless the browser comes back within minutes (a reload: session_keep).
        session = gr.State({}, delete_callback=session_keep.release_or_keep)
        gr.Markdown(INTRO)
        # On a phone the tab bar wraps onto a second line rather than hiding five tabs under
        # Gradio's "⋯" menu (issue 33).
        with gr.Tabs(overflow_behavior="wrap"):
            for label, elem_id, build in TABS:
                with gr.Tab(label, id=elem_id, elem_id=elem_id):
                    build(session)
        free_sessions_when_they_end(demo)
        session_keep.keep_models_across_reloads(demo, session)
    no_empty_upload_files(demo)
    guard_number_inputs(demo)
    plain_request_errors(demo)
    registry.warm_up_in_background()
    return demo


def launch_kwargs() -> dict:
    """Look and feel, which Gradio 6 takes in launch() rather than Blocks(); the upload cap, so
    Gradio stops a larger file while it arrives instead of storing it for the app to refuse; and
    the scripts that size the sandboxed bertviz frames, free the charts Gradio discards and ask
    before leaving a page whose run trains (that one must run before Gradio's own code, so it
    goes into the page's HTML, leave_guard.py)."""
    return dict(theme=gr.themes.Soft(), css=CSS,
                head=FRAME_RESIZER_HEAD + PLOT_CLEANUP_HEAD,
                app_kwargs={"middleware": [Middleware(EarlyScriptMiddleware)]},
                max_file_size=current_limits().max_upload_bytes)
