"""Uploads leave no empty file behind.

Gradio 6.31's `gr.File(type="filepath")` hands the handler the uploaded file's path, but on the
way (`File._process_single_file`) it also opens a `NamedTemporaryFile(delete=False)` in its cache
folder and never writes, closes or deletes it: one empty file (and one open descriptor until the
object is collected) per uploaded file, kept until Gradio's cache sweep. `gr.UploadButton` (the
checkpoint import) does the same. This app's File and UploadButton inputs get the same
conversion without that file: the type check, then the path.
"""

from __future__ import annotations

import types

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import NamedString
from gradio_client import utils as client_utils


def _path_of_upload(self: gr.File | gr.UploadButton, file: FileData) -> NamedString:
    """`File._process_single_file` for type="filepath", minus the stray temp file; the wrong
    type is refused with Gradio's own message (guard_number_inputs makes it a quiet one)."""
    if self.file_types and not client_utils.is_valid_file(file.path, self.file_types):
        raise gr.Error("Invalid file type. Please upload a file that is one of these formats: "
                       f"{self.file_types}")
    return NamedString(file.path)


def no_empty_upload_files(demo: gr.Blocks) -> None:
    """Give every `gr.File(type="filepath")` and `gr.UploadButton(type="filepath")` of `demo`
    the conversion above."""
    for block in demo.blocks.values():
        if isinstance(block, (gr.File, gr.UploadButton)) and block.type == "filepath":
            block._process_single_file = types.MethodType(_path_of_upload, block)
