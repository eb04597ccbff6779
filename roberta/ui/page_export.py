"""Views saved as pages that open anywhere with no network: bertviz's head and model views and
the neuron view as standalone HTML files (their scripts inline), for a download button.

Files go into Gradio's own temp folder, so Gradio serves them where they are and its cache
sweep (app.CACHE_SWEEP) deletes them with the rest."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from roberta.ui.session_end import upload_folder


def html_download(name: str, document: str) -> str:
    """Write `document` as `<name>.html` in a folder of its own; the path for gr.File."""
    folder = upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "view"
    path = Path(tempfile.mkdtemp(prefix="roberta-view-", dir=folder)) / f"{safe}.html"
    path.write_text(document, encoding="utf-8")
    return str(path)
