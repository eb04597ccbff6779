"""One-click downloads of a model as a Hugging Face checkpoint zip.

A `gr.DownloadButton` downloads the file it holds the moment it is clicked, so the zip is made
*before* the click: when a run ends (the Train and Sentiment tabs: that run's model) or when a
model is chosen (the Model tab: any model of this session, masked LM or classifier). The button
is then always the current model's, never a previous one's, and one click saves it.

Each browser tab keeps one `ModelExport` per button (in its gr.State): asking again for the
same model reuses its zip, and exporting another model deletes the previous zip. The zips are
made in Gradio's cache folder, which Gradio serves from without copying, and the states that
hold them are made with `export_state()`, whose delete_callback deletes the zip when the session
ends (session_end drops every state then): nothing a visitor downloaded stays on disk after
they leave.
"""

from __future__ import annotations

import gradio as gr

from roberta.ui import registry
from roberta.ui.common import plain_errors
from roberta.ui.pretrain_job import ModelExport
from roberta.ui.session_end import upload_folder

NO_MODEL_LABEL = "⬇ Download (once a model is trained)"


def button_label(name: str) -> str:
    return f"⬇ Download “{name}” (.zip)"


def download_button(label: str = NO_MODEL_LABEL, **kwargs) -> gr.DownloadButton:
    return gr.DownloadButton(label, value=None, interactive=False, **kwargs)


def new_export() -> ModelExport:
    """A ModelExport whose zips Gradio serves where they are (its cache folder): a zip made
    anywhere else is copied there when served, and the copy outlives the session."""
    return ModelExport(parent=upload_folder())


def discard_exports(holder: object) -> None:
    """A state's delete_callback: delete the zip its ModelExport made, if any."""
    export = holder.get("export") if isinstance(holder, dict) else None
    if isinstance(export, ModelExport):
        export.discard()


def export_state() -> gr.State:
    """A browser tab's gr.State that may hold a ModelExport (under "export"); its zip is
    deleted when Gradio drops the state (the session ended)."""
    return gr.State({}, delete_callback=discard_exports)


def export_zip(holder: dict, loaded: registry.LoadedModel) -> str:
    """The zip of `loaded`, made (or reused) through the ModelExport kept in `holder`."""
    export = holder.setdefault("export", new_export())
    with plain_errors("Exporting the model"):
        return str(export.zip_for(loaded.model, loaded.tokenizer, loaded.name,
                                  loaded.description, loaded.timelapse))


def ready(holder: dict, loaded: registry.LoadedModel | None):
    """The button's update: the model's zip and name, or disabled when there is none."""
    if loaded is None:
        return gr.update(value=None, label=NO_MODEL_LABEL, interactive=False)
    return gr.update(value=export_zip(holder, loaded), label=button_label(loaded.name),
                     interactive=True)


def last_model_download(control: dict | None):
    """After a run: the button offers the model this browser tab's run just made."""
    control = control if isinstance(control, dict) else {}
    return ready(control, control.get("last_model"))


def selected_model_download(model_name: str | None, session: dict | None, holder: dict | None):
    """The Model tab's button: the chosen model (masked LM or classifier) of this session."""
    holder = holder if isinstance(holder, dict) else {}
    if not model_name:
        return ready(holder, None)
    task = "mlm" if model_name in registry.choices(session, "mlm") else "classifier"
    return ready(holder, registry.resolve(session, model_name, task))
