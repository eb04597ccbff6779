"""The app's API through gradio_client, against the app launched in-process (conftest.py).

Every endpoint is called with its first argument only (the rest have defaults), and bad input
must come back as a plain sentence, never a traceback.
"""

from __future__ import annotations

import html
import json
import zipfile

import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from roberta.defaults import ASSETS_ENV
from roberta.inference import MAX_CLASSIFY_WINDOWS, attention_maps, classify, fill_mask
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer

MASKED = "The food <mask> good and the coffee was <mask>."


def app_error(client, *args, api_name: str) -> str:
    """The message of the error the endpoint raises (Gradio messages are HTML: unescaped)."""
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api_name)
    message = html.unescape(str(caught.value))
    assert "Traceback" not in message and 'File "' not in message
    return message


def test_every_required_endpoint_is_named(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/fill_mask", "/attention", "/mask_pattern", "/model_info",
                 "/import_checkpoint"):
        assert name in endpoints


# --- fill-mask -----------------------------------------------------------------------------

def embedded(tiny_assets, kind):
    """The model the app serves as its embedded default, loaded here independently."""
    cls = RobertaForMaskedLM if kind == "mlm" else RobertaForSequenceClassification
    return (cls.from_pretrained(tiny_assets / kind).eval(),
            RobertaTokenizer.from_pretrained(tiny_assets / kind))


def guesses(result):
    return [[i + 1, rank + 1, c.token, c.probability] for i, p in enumerate(result.predictions)
            for rank, c in enumerate(p.candidates)]


def visible(rows):
    """Guesses as the attention table shows tokens: a space as ␣."""
    return [[m, rank, token.replace(" ", "␣"), p] for m, rank, token, p in rows]


def same_rows(api_rows, expected_rows):
    assert [row[:3] for row in api_rows] == [row[:3] for row in expected_rows]
    assert [row[3] for row in api_rows] == pytest.approx([row[3] for row in expected_rows],
                                                         abs=1e-4)


def test_fill_mask_with_only_the_text(client, tiny_assets):
    table, chart, tokens, summary = client.predict(MASKED, api_name="/fill_mask")
    assert table["headers"] == ["mask", "rank", "token", "probability"]
    # The very guesses the library gives for the same model and text.
    same_rows(table["data"], visible(guesses(fill_mask(*embedded(tiny_assets, "mlm"), MASKED))))
    assert chart["type"] == "plotly"
    kinds = [span["class_or_confidence"] for span in tokens]
    assert kinds.count("<mask>") == 2 and kinds[0] == "special"
    assert "First guesses" in summary


def test_fill_mask_top_k_and_model(client):
    table, *_ = client.predict(MASKED, "Embedded masked LM", 3, api_name="/fill_mask")
    assert len(table["data"]) == 6


@pytest.mark.parametrize("text, expected", [
    ("", "empty"),
    ("   ", "empty"),
    ("There is nothing to guess here.", "<mask>"),
    ("The [MASK] is on the table.", "not [MASK]"),
])
def test_fill_mask_bad_text_is_a_plain_error(client, text, expected):
    assert expected in app_error(client, text, api_name="/fill_mask")


def test_fill_mask_bad_top_k_and_unknown_model(client):
    assert "top-k)” must be at least 1, not 0" in app_error(client, MASKED, "Embedded masked LM", 0,
                                                          api_name="/fill_mask")
    message = app_error(client, MASKED, "No such model", api_name="/fill_mask")
    assert "No such model" in message


LONG = " ".join(["The cat was slow yesterday and the dog was quick today."] * 500)  # 5,500 words


def test_a_long_text_is_read_around_its_mask_in_every_tab(client):
    """A window of the model's length around the first <mask>; to classify, windows from the
    start up to the cap; one line saying what was left out, and nothing echoed in full."""
    text = LONG + " The food <mask> good. " + LONG
    *_, summary = client.predict(text, api_name="/fill_mask")
    assert "around the first <mask>" in html.unescape(summary.replace("\\", ""))
    assert "**First guesses:** … " in summary and len(summary) < 3_000
    *_, table, verdict = client.predict(text, api_name="/attention")
    assert len(table["data"]) == 5  # the one mask, found in its window
    label, spans, explanation = client.predict(LONG, api_name="/classify")
    assert "the first" in explanation and "left out" in explanation
    assert len(spans) == MAX_CLASSIFY_WINDOWS * 62  # the tiny model's windows, side by side


# --- attention -----------------------------------------------------------------------------

def test_attention_with_only_the_text(client):
    head_view, model_view, single, summary, rollout, table, verdict = client.predict(
        MASKED, api_name="/attention")
    for view in (head_view, model_view):
        assert view.startswith("<iframe") and "srcdoc=" in view
        assert "<script src" not in view.replace("&lt;", "<")  # nothing fetched
    assert {single["type"], summary["type"], rollout["type"]} == {"plotly"}
    assert len(table["data"]) == 10  # 2 masks × top-5
    assert "All heads are on" in verdict


def test_attention_with_heads_switched_off(client, tiny_assets):
    *_, table, verdict = client.predict(MASKED, "Embedded masked LM", 2, 3,
                                        ["L1H1", "L2H3"], api_name="/attention")
    assert "With 2 heads switched off" in verdict
    model, tokenizer = embedded(tiny_assets, "mlm")
    head_mask = torch.ones(model.config.num_hidden_layers, model.config.num_attention_heads)
    head_mask[0, 0] = head_mask[1, 2] = 0
    switched_off = guesses(fill_mask(model, tokenizer, MASKED, head_mask=head_mask))
    all_on = guesses(fill_mask(model, tokenizer, MASKED))
    assert [r[3] for r in switched_off] != pytest.approx([r[3] for r in all_on], abs=1e-6)
    # Both columns are the library's own answers: all heads on, then those two heads off.
    same_rows([row[:4] for row in table["data"]], visible(all_on))
    same_rows([row[:2] + row[4:] for row in table["data"]], visible(switched_off))


def test_attention_without_a_mask_still_draws(client):
    head_view, *_, verdict = client.predict("The cat was good.", api_name="/attention")
    assert "srcdoc=" in head_view
    assert "Put `<mask>`" in verdict


@pytest.mark.parametrize("args, expected", [
    (("",), "empty"),
    (("The cat.", "Embedded masked LM", 9), "has 2 layers"),
    (("The cat.", "Embedded masked LM", 1, 7), "has 4 heads"),
    (("The cat.", "Embedded masked LM", 0), "must be at least 1, not 0"),
    (("The cat.", "Embedded masked LM", 1, 1, ["L9H1"]), "no head L9H1"),
    (("The cat.", "Embedded masked LM", 1, 1, ["layer one"]), "not a head name"),
])
def test_attention_bad_input_is_a_plain_error(client, args, expected):
    assert expected in app_error(client, *args, api_name="/attention")


def test_attention_head_heatmap_endpoint(client, tiny_assets):
    figure = client.predict("The cat was good.", api_name="/attention_head")
    assert figure["type"] == "plotly"
    heatmap = json.loads(figure["plot"])["data"][0]
    model, tokenizer = embedded(tiny_assets, "mlm")
    expected = attention_maps(model, tokenizer, "The cat was good.").attentions[0][0]  # L1 H1
    assert torch.tensor(heatmap["z"], dtype=torch.float32) == pytest.approx(
        expected.float(), abs=1e-4)


# --- masking -------------------------------------------------------------------------------

def test_mask_pattern_with_only_the_text(client):
    grids, coverage, split, words, summary = client.predict(
        "Unbelievably, the archaeologists rediscovered the manuscripts.",
        api_name="/mask_pattern")
    # Two grids (dynamic, static), each continued in further tables when the sentence is wider
    # than the page (viz.masking.column_blocks); every table: the default 8 epochs + a header.
    tables = grids.count("<table")
    assert tables >= 2 and tables % 2 == 0 and "data-action" in grids
    assert words.count("<table") >= 2 and "mask-word-start" in words
    assert grids.count("<tr>") == tables * (8 + 1)
    assert coverage["type"] == split["type"] == "plotly"
    assert "Measured over 5,000 draws" in summary


def test_mask_pattern_settings(client):
    grids, *_, summary = client.predict("The cat sat on the mat today.", 3, 0.5, 0.6, 0.2, 2,
                                        7, api_name="/mask_pattern")
    # 3 epochs and a header in every table (a random byte token, shown "⟨byte e5⟩", can widen
    # a grid into a continued table)
    assert grids.count("<tr>") == grids.count("<table") * (3 + 1)
    assert "(copy 2)" in grids
    assert "target 50%" in summary


@pytest.mark.parametrize("args, expected", [
    (("",), "empty"),
    (("The cat.", 0), "must be at least 1, not 0"),
    (("The cat.", 8, 0.15, 0.9, 0.2), "at most 1"),
    (("The cat.", 8, 1.0), "The masking rate must be above 0 and below 1"),
])
def test_mask_pattern_bad_input_is_a_plain_error(client, args, expected):
    assert expected in app_error(client, *args, api_name="/mask_pattern")


# --- model ---------------------------------------------------------------------------------

def test_model_info_with_defaults(client, tiny_assets):
    architecture, config, parameters, chart, status = client.predict(api_name="/model_info")
    assert "2 × encoder layer" in architecture
    assert parameters["data"][-1][0] == "total"
    model, _ = embedded(tiny_assets, "mlm")  # counted here from the tensors themselves
    assert parameters["data"][-1][1] == sum(p.numel() for p in model.parameters())
    assert sum(row[1] for row in parameters["data"][:-1]) == parameters["data"][-1][1]
    fields = {row[0]: row[1] for row in config["data"]}
    assert fields["hidden_size"] == "64" and fields["num_hidden_layers"] == "2"
    assert "Embedded masked LM" in status


def test_model_info_of_the_classifier(client):
    architecture, *_ = client.predict("Embedded sentiment classifier", api_name="/model_info")
    assert "classification head" in architecture and "negative, positive" in architecture


# --- sentiment (UI-B's tab) ----------------------------------------------------------------

def test_classify_with_only_the_text(client, tiny_assets):
    label, spans, explanation = client.predict("The coffee was wonderful.",
                                               api_name="/classify")
    expected = classify(*embedded(tiny_assets, "sentiment"), ["The coffee was wonderful."])[0]
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert shown == pytest.approx(expected, abs=1e-4)
    assert label["label"] == max(expected, key=expected.get)
    assert f"Predicted **{label['label']}**" in explanation
    assert "wonderful" in "".join(span["token"] for span in spans)
    app_error(client, "", api_name="/classify")


# --- importing a checkpoint, and sessions ----------------------------------------------------

def zip_folder(folder, target, prefix="my-model/", extra: dict | None = None):
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, prefix + file.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def test_import_checkpoint_then_use_it_in_this_session_only(client, app_url, connect,
                                                            tiny_assets, tmp_path):
    upload = zip_folder(tiny_assets / "mlm", tmp_path / "tiny-lm.zip")
    dropdown, info, status = client.predict(handle_file(str(upload)), api_name="/import_checkpoint")
    assert "Imported: tiny-lm" in status and "Imported: tiny-lm" in info
    table, *_ = client.predict(MASKED, "Imported: tiny-lm", api_name="/fill_mask")
    assert len(table["data"]) == 10
    *_, verdict = client.predict(MASKED, "Imported: tiny-lm", api_name="/attention")
    assert "All heads are on" in verdict

    other_browser = connect(app_url)
    message = app_error(other_browser, MASKED, "Imported: tiny-lm", api_name="/fill_mask")
    assert "tiny-lm" in message


def test_import_a_classifier(client, tiny_assets, tmp_path):
    upload = zip_folder(tiny_assets / "sentiment", tmp_path / "tiny-sentiment.zip", prefix="")
    _, _, status = client.predict(handle_file(str(upload)), api_name="/import_checkpoint")
    assert "sentiment classifier" in status
    architecture, *_ = client.predict("Imported: tiny-sentiment", api_name="/model_info")
    assert "classification head" in architecture


def test_import_refuses_bad_archives(client, tiny_assets, tmp_path):
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    assert "not a readable .zip" in app_error(client, handle_file(str(not_zip)),
                                              api_name="/import_checkpoint")
    climbing = zip_folder(tiny_assets / "mlm", tmp_path / "climb.zip",
                          extra={"../../evil.txt": "x"})
    assert "climbs out" in app_error(client, handle_file(str(climbing)),
                                     api_name="/import_checkpoint")
    pickle_only = tmp_path / "pickle.zip"
    with zipfile.ZipFile(pickle_only, "w") as archive:
        archive.write(tiny_assets / "mlm" / "config.json", "config.json")
        archive.writestr("pytorch_model.bin", b"not really a pickle")
        archive.write(tiny_assets / "mlm" / "tokenizer.json", "tokenizer.json")
    assert "pickle" in app_error(client, handle_file(str(pickle_only)),
                                 api_name="/import_checkpoint")


# --- without the embedded models ------------------------------------------------------------

def test_missing_embedded_models_are_explained(tmp_path, tiny_assets, launch_app, connect,
                                                monkeypatch):
    from roberta.ui.app import build_app

    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "empty"))
    demo = build_app()
    try:
        url = launch_app(demo)
        client = connect(url)
        for api_name, args in (("/fill_mask", (MASKED,)), ("/attention", (MASKED,)),
                               ("/mask_pattern", ("The cat sat.",)), ("/model_info", ())):
            message = app_error(client, *args, api_name=api_name)
            assert "python -m roberta recipe bundled" in message, api_name
    finally:
        demo.close()


@pytest.mark.slow
def test_start_up_imports_neither_transformers_nor_bertviz():
    """Start-up stays fast: bertviz (and transformers) load on first use of the Attention tab."""
    import subprocess
    import sys

    code = ("import sys, roberta.ui.app; "
            "print(sorted(m for m in ('transformers', 'bertviz', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_first_guesses_are_written_in_as_plain_text():
    from roberta.inference import Candidate, FillMaskResult, MaskPrediction, Window
    from roberta.ui.fill_mask_tab import filled_sentence

    text = "The *big* <mask> sat<mask> on <b>it</b>."
    result = FillMaskResult("", [], [MaskPrediction(3, [Candidate(" cat", 7, 0.5)]),
                                     MaskPrediction(5, [Candidate("s", 8, 0.5)])],
                            Window(0, 14, 14, (0, len(text))))
    assert filled_sentence(text, result) == (
        r"The \*big\* <b>cat</b> sat<b>s</b> on &lt;b&gt;it&lt;/b&gt;.")


def test_attention_shows_the_structured_start_before_its_first_step(client):
    """The untrained structured model is offered, and its first layer's heads look exactly one
    token left (head 1) and one token right (head 2), as roberta/init.py builds them."""
    import json

    from roberta.ui.registry import STRUCTURED_START_NAME

    text = "The cat sat on the mat and looked at the dog."
    for head, offset in ((1, -1), (2, 1)):
        figure = client.predict(text, STRUCTURED_START_NAME, 1, head,
                                api_name="/attention_head")
        heatmap = json.loads(figure["plot"])["data"][0]
        z = heatmap["z"]  # rows: queries, columns: keys, both in token order
        for i in range(1, len(z) - 1):
            assert z[i][i + offset] > 0.9, (head, i, z[i])


# --- byte-level tokens read as characters in every tab ----------------------------------------

WIDE = "我喜欢 <mask> 🍕."  # a Chinese phrase and an emoji: bytes to a small English BPE


def strings_in(value) -> list[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def test_chinese_and_emoji_show_as_characters_in_every_tab(client):
    _, chart, tokens, summary = client.predict(WIDE, api_name="/fill_mask")
    spans = [span["token"] for span in tokens]
    assert "我 (3 tokens)" in spans and "🍕 (4 tokens)" in spans, spans  # the pieces, merged
    _, _, single, _, rollout, _, _ = client.predict(WIDE, api_name="/attention")
    labels = strings_in(json.loads(single["plot"]))
    assert "🍕\u202f(1/4)" in labels and "我\u202f(3/3)" in labels, labels
    grids, *_ = client.predict(WIDE, api_name="/mask_pattern")
    assert "🍕" in html.unescape(grids) and "我" in html.unescape(grids)
    for shown in (spans, labels, strings_in(json.loads(rollout["plot"])), [grids]):
        assert not any("\\x" in s for s in shown), shown


# --- inside one prediction: the logit lens and the neuron view (issue 35) -------------------

def test_logit_lens_with_only_the_text(client, tiny_assets):
    from roberta.lens import logit_lens

    figure, table, summary = client.predict(MASKED, api_name="/logit_lens")
    model, tokenizer = embedded(tiny_assets, "mlm")
    lens = logit_lens(model, tokenizer, MASKED)  # the first <mask>
    heatmap = json.loads(figure["plot"])["data"][0]
    assert [p for row in heatmap["z"] for p in row] == pytest.approx(
        [p for g in lens.layers for p in g.probabilities], abs=1e-6)
    assert [row[2] for row in table["data"]] == [g.answer_rank for g in lens.layers]
    assert table["data"][0][0] == "embeddings" and table["data"][-1][2] == 1
    assert "answers" in summary
    second = logit_lens(model, tokenizer, MASKED, mask_index=1)
    _, table, _ = client.predict(MASKED, "Embedded masked LM", 2, api_name="/logit_lens")
    assert [row[3] for row in table["data"]] == pytest.approx(
        [g.answer_probability for g in second.layers], abs=1e-4)


@pytest.mark.parametrize("args, expected", [
    (("",), "empty"),
    (("The cat was good.",), "has no <mask>"),
    ((MASKED, "Embedded masked LM", 3), "mask_index must be 0 to 1, got 2"),
    ((MASKED, "Embedded masked LM", 0), "must be at least 1, not 0"),
    ((MASKED, "Embedded masked LM", "two"), "must be a number"),
])
def test_logit_lens_bad_input_is_a_plain_error(client, args, expected):
    assert expected in app_error(client, *args, api_name="/logit_lens")


def test_neuron_view_with_only_the_text(client, tiny_assets):
    figure, table, summary = client.predict(MASKED, api_name="/neuron_view")
    model, tokenizer = embedded(tiny_assets, "mlm")
    expected = attention_maps(model, tokenizer, MASKED).attentions[0, 0, 1]  # L1 H1, query 1
    assert [row[4] for row in table["data"]] == pytest.approx(expected.tolist(), abs=1e-4)
    assert json.loads(figure["plot"])["data"][-1]["x"] == pytest.approx(expected.tolist(),
                                                                       abs=1e-6)
    assert "position 1" in summary


@pytest.mark.parametrize("args, expected", [
    (("",), "empty"),
    (("The cat.", "Embedded masked LM", 9), "layer must be between 1 and 2, got 9"),
    (("The cat.", "Embedded masked LM", 1, 5), "head must be between 1 and 4, got 5"),
    (("The cat.", "Embedded masked LM", 1, 1, 40), "the query token must be 0 to"),
    (("The cat.", "Embedded masked LM", 1, 1, -1), "must be at least 0, not -1"),
])
def test_neuron_view_bad_input_is_a_plain_error(client, args, expected):
    assert expected in app_error(client, *args, api_name="/neuron_view")


def test_views_save_as_pages_with_only_the_text(client):
    from pathlib import Path

    head, model = client.predict("The cat sat on the mat.", api_name="/attention_pages")
    for path, marker in ((head, "bertviz head view"), (model, "bertviz model view")):
        page = Path(path).read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") or page.lstrip().startswith("<html")
        assert marker in page and "<script src=" not in page  # bertviz, with nothing fetched
    neuron = Path(client.predict("The cat sat on the mat.", api_name="/neuron_view_page"))
    assert neuron.name == "neuron-view-L1H1.html"
    page = neuron.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and 'src="http' not in page
    assert "empty" in app_error(client, "", api_name="/attention_pages")
    assert "the query token must be 0 to" in app_error(
        client, "The cat.", "Embedded masked LM", 1, 1, 99, api_name="/neuron_view_page")


def test_the_attention_summary_names_each_heads_role(client, tiny_assets):
    from roberta.viz.attention import ROLE_SHORT
    from roberta.viz.head_roles import head_roles

    _, _, _, summary, *_ = client.predict(MASKED, api_name="/attention")
    first_panel = json.loads(summary["plot"])["data"][0]
    model, tokenizer = embedded(tiny_assets, "mlm")
    labels = head_roles(model, tokenizer).labels
    assert first_panel["text"] == [[ROLE_SHORT[label] for label in row] for row in labels]
