"""Nothing a visitor does stays on the server's disk after they leave (issue #31, item 7): served
exports are deleted with the session, uploads leave no empty temp file, and a session's states
(also those only ever changed in place) are dropped when it ends."""

from __future__ import annotations

import tempfile
import time
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from gradio.data_classes import FileData

from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import downloads, registry
from roberta.ui.pretrain_job import ModelExport, export_hf_zip

PASTED = "\n\n".join(f"The cat number {i} sat on the mat and the dog was quick."
                     for i in range(60))
TRAIN = dict(corpus="pasted", pasted_text=PASTED, tokenizer="embedded", seq_length=32,
             batch_size=8, eval_every=1000)


def files_under(*folders: Path) -> dict[str, int]:
    """Every file under `folders`: its path and size."""
    return {str(p): p.stat().st_size for folder in folders for p in folder.rglob("*")
            if p.is_file()}


def checkpoint_upload(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in source.iterdir():
            archive.write(file, file.name)
    return target


@pytest.fixture
def own_disk(tmp_path, monkeypatch):
    """The app's temp folder and Gradio's cache, both under tmp_path, so the test sees every
    file the app makes (and nobody else's)."""
    gradio_folder, temp_folder = tmp_path / "gradio", tmp_path / "tmp"
    gradio_folder.mkdir()
    temp_folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_folder))
    monkeypatch.setattr(tempfile, "tempdir", str(temp_folder))
    return gradio_folder, temp_folder


@pytest.mark.slow  # trains, downloads and imports through the app: ~15 s
def test_a_session_that_trains_downloads_and_imports_leaves_the_disk_as_it_was(
        tiny_assets, launch_app, connect, own_disk, tmp_path):
    import httpx

    from roberta.ui.app import build_app

    demo = build_app()  # after own_disk: its components cache under the test's folder
    url = launch_app(demo)
    try:
        baseline = files_under(*own_disk)
        client = connect(url)
        client.predict(3, **TRAIN, api_name="/train")
        # As a browser downloads: the file the button's URL names, fetched over HTTP.
        client.download_files = False
        served = client.predict(api_name="/download_model")
        response = httpx.get(served["url"], timeout=60)
        assert response.status_code == 200 and response.content[:2] == b"PK"
        for n in range(3):
            upload = checkpoint_upload(tiny_assets / "mlm", tmp_path / f"mine-{n}.zip")
            client.predict({"path": str(upload), "meta": {"_type": "gradio.FileData"}},
                           api_name="/import_checkpoint")
        during = files_under(*own_disk)
        # The zip is served from where it was made: one copy, no folder of loose files.
        made = [path for path in during if path not in baseline]
        assert [Path(p).suffix for p in made] == [".zip"], made
        assert Path(served["path"]).resolve() == Path(made[0]).resolve()
        assert [p for p, size in during.items() if size == 0] == []  # no empty file per upload
        client.close()
        deadline = time.monotonic() + 60  # the server notices the closed heartbeat
        while files_under(*own_disk) != baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        assert files_under(*own_disk) == baseline
        # Gradio's record of the session is gone too (it held the Train tab's run control).
        assert client.session_hash not in demo.state_holder.session_data
    finally:
        demo.close()


def test_a_file_input_makes_no_temp_file(tiny_assets, own_disk, tmp_path):
    from roberta.ui.app import build_app

    demo = build_app()
    gradio_folder, _ = own_disk
    upload = next(b for b in demo.blocks.values()  # the checkpoint import's UploadButton
                  if isinstance(b, (gr.File, gr.UploadButton)) and b.file_types == [".zip"])
    stored = gradio_folder / "0123abcd" / "model.zip"  # as Gradio stores an upload
    stored.parent.mkdir()
    stored.write_bytes(b"PK")
    before = files_under(gradio_folder)
    assert upload.preprocess(FileData(path=str(stored), orig_name="model.zip")) == str(stored)
    assert files_under(gradio_folder) == before
    wrong = stored.with_name("model.txt")
    wrong.write_text("not a zip")
    with pytest.raises(gr.Error, match="Invalid file type"):
        upload.preprocess(FileData(path=str(wrong), orig_name="model.txt"))


def test_an_export_keeps_only_its_zip(tiny_assets, tmp_path):
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    archive = export_hf_zip(model, tokenizer, "Mine", parent=tmp_path / "exports")
    assert archive.is_relative_to(tmp_path / "exports")
    assert list(archive.parent.iterdir()) == [archive]  # the zipped files are gone
    assert any(n.endswith("/model.safetensors") for n in zipfile.ZipFile(archive).namelist())


def test_an_export_state_deletes_its_zip_when_dropped(tiny_assets, own_disk):
    gradio_folder, _ = own_disk
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    holder: dict = {}
    zip_path = Path(downloads.export_zip(holder, registry.LoadedModel(
        "Mine", "mlm", model, tokenizer, "a test model")))
    assert zip_path.is_file() and zip_path.is_relative_to(gradio_folder)
    state = downloads.export_state()
    state.delete_callback(holder)
    assert not zip_path.exists() and not zip_path.parent.exists()
    assert holder["export"].archive is None
    state.delete_callback({"export": "not an export"})  # anything else is left alone
    state.delete_callback(None)


def test_discard_after_discard_and_a_new_zip_after(tiny_assets, tmp_path):
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    export = ModelExport(parent=tmp_path)
    first = export.zip_for(model, tokenizer, "Mine")
    export.discard()
    export.discard()
    assert not first.exists()
    second = export.zip_for(model, tokenizer, "Mine")  # asked again: made again
    assert second.is_file() and second != first
