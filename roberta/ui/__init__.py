"""The Gradio app: one module per tab, assembled in `app.py`. Only this package imports gradio."""

import os

# A workshop room may be offline and a Space's visitors did not agree to telemetry: Gradio's
# analytics and version checks stay off unless the host turns them on. Set before gradio loads.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
