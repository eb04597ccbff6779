"""What the app says (issue 13, item 7): no doubled words after an import, the tied-embedding
note only for masked LMs, a note for switched-off heads, no promise of a baseline before a
run. Through the app's API where the words reach the page (gradio_client)."""

from __future__ import annotations

import zipfile

from gradio_client import handle_file

from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.ui.attention_tab import switched_off_note
from roberta.ui.model_import import import_message
from roberta.ui.model_tab import TIED_WORD_EMBEDDINGS, WORD_EMBEDDINGS, parameters_by_component

MASKED = "The food was <mask> and the service was slow."


def test_an_import_is_announced_without_doubled_words(client, tiny_assets, tmp_path):
    upload = tmp_path / "mymodel.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in sorted((tiny_assets / "mlm").iterdir()):
            archive.write(file, f"mymodel/{file.name}")
    _, _, status = client.predict(handle_file(str(upload)), api_name="/import_checkpoint")
    assert "Imported: mymodel" in status
    assert status.count("Imported") == 1, status  # the name says it; the sentence does not
    toast = import_message("Imported: mymodel", "mymodel")
    assert toast.count("Imported") == 1 and "mymodel.zip" in toast


def test_only_a_masked_lm_shares_its_word_embeddings(tiny_assets):
    mlm = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    classifier = RobertaForSequenceClassification.from_pretrained(tiny_assets / "sentiment")
    mlm_parts = set(parameters_by_component(mlm)["component"])
    classifier_parts = set(parameters_by_component(classifier)["component"])
    assert TIED_WORD_EMBEDDINGS in mlm_parts and WORD_EMBEDDINGS not in mlm_parts
    assert WORD_EMBEDDINGS in classifier_parts and TIED_WORD_EMBEDDINGS not in classifier_parts


def test_the_model_tab_names_a_classifiers_embeddings_plainly(client):
    _, _, table, *_ = client.predict("Embedded sentiment classifier", api_name="/model_info")
    components = [row[0] for row in table["data"]]
    assert WORD_EMBEDDINGS in components
    assert not any("LM decoder" in c for c in components)


def test_switched_off_heads_are_explained_above_the_views(client):
    head_view, model_view, *_ = client.predict(MASKED, "Embedded masked LM", 1, 1,
                                               ["L1H2", "L2H1"], api_name="/attention")
    for view in (head_view, model_view):
        assert "2 heads switched off (L1H2, L2H1)" in view
    head_view, model_view, *_ = client.predict(MASKED, "Embedded masked LM", 1, 1, [],
                                               api_name="/attention")
    assert "switched off" not in head_view and "switched off" not in model_view


def test_the_note_is_empty_when_every_head_is_on():
    import torch

    assert switched_off_note(None) == ""
    assert switched_off_note(torch.ones(2, 2)) == ""
    assert "1 head switched off (L2H1)" in switched_off_note(torch.tensor([[1.0, 1], [0, 1]]))
