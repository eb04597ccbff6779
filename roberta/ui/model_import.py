"""Importing a Hugging Face checkpoint (.zip) into this browser session: one panel, built beside
the model picker of the Model tab and of the Fill-mask tab (issue 33: one place for models,
reachable from both). The imported model joins the session's models, so every tab's picker
offers it once that tab is opened again.

The panel uploads with a `gr.UploadButton`, not a `gr.File`: a File shows Gradio's upload
progress, which listens on a stream whose `close()` Gradio's own client leaves unimplemented, so
every upload logged "Method not implemented." twice in the browser's console (issue 33). The
UploadButton uploads without that progress stream, and one click both chooses and imports."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from roberta.defaults import TASK_WORDS
from roberta.ui import limits, registry, timelapse_view
from roberta.ui.common import markdown_literal, plain_errors, shown, user_error
from roberta.ui.session_end import delete_uploads

IMPORT_BUTTON = "Import a checkpoint (.zip)"
ACCORDION = "Import a Hugging Face checkpoint (.zip)"
# The tab that uses each task's models, for a model the picker next to the import cannot show.
USED_IN = {"mlm": "the Fill-mask, Attention or Masking tab", "classifier": "the Sentiment tab"}
# Both panels share one slot: two imports at once would both unpack and check a checkpoint.
CONCURRENCY_ID = "import_checkpoint"


def imported_name(stem: str) -> str:
    """One name per file: importing a file of the same name again replaces the earlier import
    (registry.add), instead of piling up copies in the server's memory."""
    return f"Imported: {stem}"


def import_message(name: str, stem: str) -> str:
    """The toast after an import, naming the file and the model once each (the name already
    says "Imported")."""
    return f"Added {stem}.zip as “{name}”."


def import_checkpoint(session: dict, upload: str | None, current: str | None,
                      task: str | tuple[str, ...] = "mlm"):
    """Load an uploaded .zip of a Hugging Face checkpoint into this session. `task`: what the
    picker beside the import offers (its choices are refreshed, the new model selected when it
    is one of them). Returns (session, the picker's update, its line, the import's status)."""
    from roberta.checkpoint_zip import load_checkpoint_zip

    if not upload:
        raise user_error("Choose a .zip file first: a zipped Hugging Face checkpoint folder "
                         "(config.json, model.safetensors and the tokenizer files).")
    if not isinstance(upload, str) or not Path(upload).is_file():
        raise user_error("The uploaded file is no longer on the server (an upload is deleted "
                         "once it has been imported): choose the .zip again.")
    session = session if isinstance(session, dict) else {}
    try:
        with tempfile.TemporaryDirectory(prefix="roberta-import-") as workdir, \
                plain_errors("Importing the checkpoint"):
            limits.check_upload([upload])  # the app's upload cap (ROBERTA_LAB_MAX_UPLOAD_MB)
            caps = limits.current_limits()
            imported = load_checkpoint_zip(upload, Path(workdir) / "checkpoint",
                                           caps.max_upload_bytes, caps.max_parameters,
                                           caps.import_budget())
    finally:  # read or refused, the upload has served: it does not wait for the cache sweep
        delete_uploads([Path(upload)])
    stem = Path(upload).stem[:60] or "checkpoint"
    name = imported_name(stem)
    loaded = registry.LoadedModel(name, imported.task, imported.model, imported.tokenizer,
                                  registry.describe(imported.model, f"imported from {stem}.zip"),
                                  imported.timelapse, imported.timelapse_note)
    registry.add(session, loaded)
    names = registry.choices_for(session, task)
    if imported.task in registry.task_list(task):
        value, where = name, "It is selected above."
    else:
        value = current if current in names else (names[0] if names else None)
        where = (f"It is a {TASK_WORDS[imported.task]}: choose it in "
                 f"{USED_IN[imported.task]}.")
    gr.Info(shown(import_message(name, stem)))
    status = (f"✅ Added **{markdown_literal(name)}** "
              f"({markdown_literal(loaded.description)}). {where}")
    return (session, gr.update(choices=names, value=value),
            registry.model_info(session, value, task), status)


def imported_timelapse(session: dict | None, name: str | None) -> dict:
    """The time-lapse block's value after an import: the imported run's time-lapse, or the
    one sentence saying why it has none (missing, truncated, refused)."""
    loaded = registry.session_models(session).get(name) if isinstance(name, str) else None
    if loaded is None:
        return timelapse_view.empty_value("")
    if loaded.timelapse is None or not loaded.timelapse.snapshots:
        return timelapse_view.empty_value(loaded.timelapse_note or
                                          "This model has no time-lapse.")
    return timelapse_view.timelapse_value([loaded.timelapse], [f"Time-lapse of {name}"])


def build_import_panel(session: gr.State, picker: gr.Dropdown, picker_info: gr.Markdown,
                       task: str | tuple[str, ...], api_name: str | None = None) -> gr.Markdown:
    """The import, folded under its title, feeding `picker` (and `picker_info`, its line) —
    the model dropdown of the tab it is built in, which offers `task`'s models. `api_name`:
    the endpoint's name, for the one panel that serves programs (the others are private).
    Returns the import's status line."""
    with gr.Accordion(ACCORDION, open=False):
        gr.Markdown("Zip a folder written by `save_pretrained` (ours or transformers'): "
                    "`config.json`, `model.safetensors` and the tokenizer files. Only "
                    "safetensors weights are read, never pickles. The model is kept for this "
                    "browser session only, and every tab can use it.")
        upload_button = gr.UploadButton(IMPORT_BUTTON, file_types=[".zip"], type="filepath",
                                 variant="secondary")
        status = gr.Markdown()
        # An imported run's time-lapse, replayed here (its name goes through a state, so the
        # import's API answer stays the picker, its line and the status).
        imported = gr.State(None)
        replay = timelapse_view.timelapse_block(
            "import-timelapse-" + "-".join(registry.task_list(task)), message="")

    def import_here(session_value: dict, upload: str | None, current: str | None):
        answer = import_checkpoint(session_value, upload, current, task)
        return *answer, imported_name(Path(upload).stem[:60] or "checkpoint")

    visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
    upload_button.upload(import_here, [session, upload_button, picker],
                         [session, picker, picker_info, status, imported], concurrency_limit=1,
                         concurrency_id=CONCURRENCY_ID, **visibility).then(
        imported_timelapse, [session, imported], replay, api_visibility="private")
    return status
