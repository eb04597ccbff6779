"""What a hostile visitor or checkpoint can put on the page, the server's disk and its memory.

Markup: labels, tokens, model and file names are written into Markdown; a checkpoint whose
id2label holds a code fence and HTML must never produce a tag, an image or a link. These tests
call the tabs' functions directly (no server), with the payloads the issue found working.
"""

from __future__ import annotations

import json
import math
import re
import zipfile

import pytest
import torch

from roberta.config import RobertaConfig
from roberta.inference import Candidate, FillMaskResult, MaskPrediction, Window
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import registry

# A fence closes any code block the text sits in; then raw HTML and a javascript: link.
WHOLE = Window(0, 1, 1, (0, 1_000))  # a short text, read whole
PAYLOAD = ("```\n<img src=x onerror=alert(1)>\n<details ontoggle=alert(1)>open</details> "
           "[x](javascript:alert(1))")
LIVE_MARKUP = re.compile(r"<img|<details|\]\(javascript:", re.IGNORECASE)


def assert_inert(markdown: str) -> None:
    found = LIVE_MARKUP.findall(markdown)
    assert not found, f"live markup {found} in {markdown!r}"


@pytest.fixture
def hostile_session(tiny_assets):
    """A session holding a classifier whose labels and name are payloads, and a masked LM whose
    name is one."""
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    shape = dict(vocab_size=tokenizer.vocab_size, max_position_embeddings=66)
    labels = {0: f"{PAYLOAD} 0", 1: f"{PAYLOAD} 1"}
    torch.manual_seed(0)
    classifier = RobertaForSequenceClassification(
        RobertaConfig.preset("nano", **shape, id2label=labels)).eval()
    mlm = RobertaForMaskedLM(RobertaConfig.preset("nano", **shape)).eval()
    session: dict = {}
    for name, task, model in ((f"Imported: {PAYLOAD}", "classifier", classifier),
                              (f"Imported: {PAYLOAD} (mlm)", "mlm", mlm)):
        registry.add(session, registry.LoadedModel(
            name, task, model, tokenizer, registry.describe(model, f"imported from {PAYLOAD}")))
    return session


def test_the_helper_leaves_no_syntax_live():
    from roberta.ui.common import markdown_literal

    text = markdown_literal(PAYLOAD + " *a* _b_ `c` # ! | ~ $$d$$ \\ \"e\" 'f' &amp;")
    assert_inert(text)
    assert "\n" not in text and "```" not in text
    # Every syntax character is escaped (preceded by a backslash) or an entity.
    assert not re.search(r"(?<!\\)[`*_\[\]()#|!~$]", re.sub(r"&#x27;", "", text))
    assert "&amp;amp;" in text and "&quot;e&quot;" in text


def test_model_tab_architecture_and_status(hostile_session):
    from roberta.ui.model_tab import model_info

    for name in registry.choices(hostile_session, "classifier")[1:] + \
            registry.choices(hostile_session, "mlm")[1:2]:
        architecture, config, _, _, status = model_info(name, hostile_session)
        assert_inert(architecture)
        assert_inert(status)
        assert architecture.count("```") == 2  # the one block the tab writes, closed
    assert "Classes:" in model_info(f"Imported: {PAYLOAD}", hostile_session)[0]


def test_model_selector_line(hostile_session):
    for task in ("mlm", "classifier"):
        for name in registry.choices(hostile_session, task):
            assert_inert(registry.model_info(hostile_session, name, task))


def test_classify_explanation(hostile_session):
    from roberta.ui.sentiment_tab import classify_text

    probabilities, _, explanation = classify_text("The food was great.",
                                                  f"Imported: {PAYLOAD}", hostile_session)
    assert_inert(explanation)
    assert set(probabilities) == {f"{PAYLOAD} 0", f"{PAYLOAD} 1"}  # gr.Label shows text as is


def test_fill_mask_summary(hostile_session):
    from roberta.ui.fill_mask_tab import predict

    *_, summary = predict(f"<mask> {PAYLOAD}", f"Imported: {PAYLOAD} (mlm)",
                          session=hostile_session)
    assert_inert(summary)


def test_attention_verdict_with_hostile_tokens(hostile_session, monkeypatch):
    """Tokens come from the checkpoint's vocabulary: make every guess a payload."""
    from roberta.ui import attention_tab

    def payload_guesses(model, tokenizer, text, top_k=5, head_mask=None):
        candidates = [Candidate(f" {PAYLOAD}", 7 + (head_mask is not None), 0.5)]
        return FillMaskResult(text, ["<s>", "<mask>", "</s>"],
                              [MaskPrediction(1, candidates * top_k)], WHOLE)

    monkeypatch.setattr(attention_tab, "fill_mask", payload_guesses)
    loaded = registry.resolve(hostile_session, f"Imported: {PAYLOAD} (mlm)", "mlm")
    _, verdict = attention_tab.comparison(loaded, "a <mask>", torch.ones(2, 4), 1)
    assert "first guess changed" in verdict
    assert_inert(verdict)


def test_train_probe_table(hostile_session):
    from roberta.ui.train_tab import probe_table

    result = FillMaskResult("", [], [MaskPrediction(1, [Candidate(PAYLOAD, 7, 0.5)])], WHOLE)
    table = probe_table([result, None], [f"{PAYLOAD} <mask>", PAYLOAD], step=3)
    first_column = table.iloc[:, 0]
    for cell in first_column:
        assert_inert(cell)
    assert "**" in first_column[0]  # the guess is still in bold


def test_import_status_with_a_hostile_file_name(tiny_assets, tmp_path):
    from roberta.ui.model_import import import_checkpoint

    # A file name may hold anything but "/" and NUL.
    upload = tmp_path / (PAYLOAD.replace("/", "∕") + ".zip")
    with zipfile.ZipFile(upload, "w") as archive:
        for file in (tiny_assets / "mlm").iterdir():
            archive.write(file, file.name)
    session, _, info, status = import_checkpoint({}, str(upload), None)
    assert_inert(status)
    assert_inert(info)
    assert len(registry.choices(session, "mlm")) == 3  # embedded, imported, structured start


# --- uploads: the parameter cap applies to imports -----------------------------------------

def test_import_refuses_a_config_over_the_hosts_parameter_cap(tiny_assets, tmp_path,
                                                              monkeypatch):
    import gradio as gr

    from roberta.ui.limits import ENV_MAX_PARAMETERS
    from roberta.ui.model_import import import_checkpoint

    monkeypatch.setenv(ENV_MAX_PARAMETERS, "1M")
    files = {f.name: f.read_bytes() for f in (tiny_assets / "mlm").iterdir()}
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "vocab_size": 750_000,
                                       "hidden_size": 1024, "num_attention_heads": 16}).encode()
    files["model.safetensors"] = b"\0" * 8
    upload = tmp_path / "huge.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(gr.Error, match="more than the 1,000,000 allowed here"):
        import_checkpoint({}, str(upload), None)


# --- uploads and Gradio's cache --------------------------------------------------------------

def test_launch_caps_each_upload_at_the_upload_limit(monkeypatch):
    from roberta.ui.app import launch_kwargs
    from roberta.ui.limits import ENV_MAX_UPLOAD_MB
    from roberta.ui.plot_cleanup import PLOT_CLEANUP_HEAD
    from roberta.viz.bertviz_offline import FRAME_RESIZER_HEAD

    monkeypatch.setenv(ENV_MAX_UPLOAD_MB, "7")
    kwargs = launch_kwargs()
    assert kwargs["max_file_size"] == 7_000_000
    # sizes the sandboxed bertviz frames; frees the charts Gradio discards
    assert kwargs["head"] == FRAME_RESIZER_HEAD + PLOT_CLEANUP_HEAD


def test_the_leave_guard_runs_before_gradios_own_script(app_url):
    """The page asks before leaving while a run trains, and its script must come before
    Gradio's module (which adds a listener that would end the run) — in the served HTML."""
    import urllib.request

    from roberta.ui.leave_guard import LEAVE_GUARD_SCRIPT

    page = urllib.request.urlopen(app_url, timeout=30).read().decode()
    guard = page.index(LEAVE_GUARD_SCRIPT)
    assert guard < page.index('<script type="module"')
    assert page.count("robertaLabRunGoing = ") == 1
    other = urllib.request.urlopen(app_url.rstrip("/") + "/config", timeout=30).read().decode()
    assert "robertaLabRunGoing" not in other  # JSON and the rest pass through untouched


def test_the_app_sweeps_gradios_cache(tiny_assets):
    from roberta.ui.app import CACHE_SWEEP, build_app

    demo = build_app()
    frequency, age = demo.delete_cache
    assert (frequency, age) == CACHE_SWEEP
    assert 0 < frequency <= age <= 24 * 3600
    assert demo.analytics_enabled is False  # no telemetry leaves the server


def test_the_readme_names_the_gradio_version_it_pins():
    """A Space installs the README's sdk_version, the tests requirements.txt's pin: one version."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    front_matter = root.joinpath("README.md").read_text().split("---")[1]
    sdk = next(line.split(":", 1)[1].strip() for line in front_matter.splitlines()
               if line.startswith("sdk_version:"))
    pin = next(line.split("==", 1)[1].split()[0]
               for line in root.joinpath("requirements.txt").read_text().splitlines()
               if line.startswith("gradio=="))
    assert sdk == pin


# --- /download_model: one export per model ---------------------------------------------------

def test_downloads_of_one_model_share_one_export(tiny_assets, tmp_path, monkeypatch):
    import gc
    import tempfile

    from roberta.ui.train_tab import download_model

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # where exports are made

    def exports() -> list:
        return sorted(tmp_path.rglob("roberta-lab-export-*"))

    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    control = {"last_model": registry.LoadedModel("My model 1 (nano, 5 steps)", "mlm", model,
                                                  tokenizer, "a test model")}
    paths = {download_model(control) for _ in range(3)}
    assert len(paths) == 1 and len(exports()) == 1
    first = paths.pop()

    # A new run's model replaces the export: the old zip and its folder are gone.
    newer = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    control["last_model"] = registry.LoadedModel("My model 2 (nano, 5 steps)", "mlm", newer,
                                                 tokenizer, "a test model")
    second = download_model(control)
    assert second != first and len(exports()) == 1
    assert zipfile.ZipFile(second).namelist()[0].startswith("my-model-2-")

    # When the session's state is dropped, so is its export.
    del control
    gc.collect()
    assert exports() == []


# --- models a session keeps: caps, replacing, letting go --------------------------------------

def nano_mlm(tokenizer: RobertaTokenizer, seed: int = 0) -> RobertaForMaskedLM:
    torch.manual_seed(seed)
    config = RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                  max_position_embeddings=66)
    return RobertaForMaskedLM(config).eval()


def loaded_model(tokenizer, name: str, seed: int = 0) -> registry.LoadedModel:
    return registry.LoadedModel(name, "mlm", nano_mlm(tokenizer, seed), tokenizer, "a test model")


def test_model_bytes_counts_every_tensor_once(tiny_assets):
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    model = nano_mlm(tokenizer)
    state = model.state_dict()  # holds the tied decoder weight under both of its names
    by_storage = {t.data_ptr(): t.numel() * t.element_size() for t in state.values()}
    assert len(by_storage) < len(state)
    assert registry.model_bytes(model) == sum(by_storage.values())


def test_a_session_keeps_at_most_its_cap_and_lets_the_oldest_go(tiny_assets, monkeypatch):
    import gradio as gr

    from roberta.ui.limits import ENV_MAX_SESSION_MODELS

    monkeypatch.setenv(ENV_MAX_SESSION_MODELS, "2")
    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    session: dict = {}
    for n in (1, 2, 3):
        registry.add(session, loaded_model(tokenizer, f"My model {n}", seed=n))
    mine = registry.choices(session, "mlm")
    assert "My model 1" not in mine and {"My model 2", "My model 3"} <= set(mine)
    assert len(warnings) == 1
    assert "at most 2 models" in warnings[0] and "“My model 1” (the oldest) was let go" \
        in warnings[0] and "“My model 3”" in warnings[0]
    # Replacing a model of the same name is not a new one: nothing else is let go.
    replacement = loaded_model(tokenizer, "My model 3", seed=9)
    registry.add(session, replacement)
    assert registry.resolve(session, "My model 3", "mlm") is replacement
    assert {"My model 2", "My model 3"} <= set(registry.choices(session, "mlm"))
    assert len(warnings) == 1


def test_the_host_refuses_a_model_past_its_total_and_keeps_the_session(tiny_assets,
                                                                      monkeypatch):
    import gradio as gr

    from roberta.ui.limits import ENV_MAX_MODELS_MB

    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    first = loaded_model(tokenizer, "First")
    size = registry.footprint([first])  # the model and its tokenizer
    others = registry.held_bytes()  # other tests' sessions still alive in this process
    monkeypatch.setenv(ENV_MAX_MODELS_MB, str((others + 1.5 * size) / 1e6))
    session: dict = {}
    registry.add(session, first)
    second_tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    with pytest.raises(gr.Error) as refused:  # another visitor
        registry.add({}, loaded_model(second_tokenizer, "Second", seed=1))
    message = str(refused.value)
    assert "would take it past its limit" in message and ENV_MAX_MODELS_MB in message
    assert "“Second”" in message
    # The same name again replaces, so it fits; once this session lets go, another fits.
    registry.add(session, loaded_model(tokenizer, "First", seed=2))
    assert registry.release(session) == 1
    registry.add({}, loaded_model(second_tokenizer, "Second", seed=1))


def test_reimporting_a_file_replaces_its_model(tiny_assets, tmp_path):
    from roberta.ui.model_import import import_checkpoint

    upload = tmp_path / "again.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in (tiny_assets / "mlm").iterdir():
            archive.write(file, file.name)
    session, *_ = import_checkpoint({}, str(upload), None)
    first = registry.resolve(session, "Imported: again", "mlm")
    session, *_ = import_checkpoint(session, str(upload), None)
    second = registry.resolve(session, "Imported: again", "mlm")
    assert second is not first
    assert [n for n in registry.choices(session, "mlm") if n.startswith("Imported")] == \
        ["Imported: again"]


def test_a_sessions_models_are_freed_when_its_state_is_deleted(tiny_assets):
    """gr.State's delete_callback lets a session go (registry.release; session_keep keeps one
    only for a browser that may reload): after it, nothing holds the model."""
    import gc
    import weakref

    from roberta.ui import session_keep
    from roberta.ui.app import build_app

    demo = build_app()
    state = next(b for b in demo.blocks.values() if type(b).__name__ == "State")
    assert state.delete_callback is session_keep.release_or_keep
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    session: dict = {}
    registry.add(session, loaded_model(tokenizer, "Mine"))
    alive = weakref.ref(registry.resolve(session, "Mine", "mlm").model)
    assert any(m.name == "Mine" for m in registry.held_models())
    state.delete_callback(session)
    gc.collect()
    assert alive() is None
    assert not any(m.name == "Mine" for m in registry.held_models())
    assert registry.choices(session, "mlm") == registry.choices({}, "mlm")


@pytest.mark.slow  # waits for the server to notice the client left: ~15 s
def test_a_client_that_leaves_has_its_models_and_uploads_let_go_at_once(app_url, tiny_assets,
                                                                         tmp_path):
    """Gradio keeps a closed session's state for an hour and its uploads until the cache sweep;
    the unload handler drops both as soon as the client's heartbeat ends."""
    import time
    import uuid

    from gradio_client import Client, handle_file

    from roberta.ui.session_end import upload_folder

    stem = f"leaving-{uuid.uuid4().hex[:8]}"
    upload = tmp_path / f"{stem}.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in (tiny_assets / "mlm").iterdir():
            archive.write(file, file.name)

    def held() -> bool:
        return any(m.name == f"Imported: {stem}" for m in registry.held_models())

    def stored(suffix: str) -> list:
        return list(upload_folder().glob(f"*/{stem}.{suffix}"))

    client = Client(app_url, verbose=False)
    client.predict(handle_file(str(upload)), api_name="/import_checkpoint")
    assert held() and stored("zip") == []  # an imported upload is deleted at once
    # A CSV the fine-tuning refused stays in Gradio's cache while the session lives.
    refused = tmp_path / f"{stem}.csv"
    refused.write_text("text,label\nfine,1\nok,1\n")
    with pytest.raises(Exception, match="only one class"):
        client.predict(3, "csv", handle_file(str(refused)), api_name="/finetune")
    assert len(stored("csv")) == 1
    client.close()
    for _ in range(300):  # the server notices the closed heartbeat within a moment
        if not held() and not stored("csv"):
            break
        time.sleep(0.1)
    assert not held()
    assert stored("csv") == []


# --- /attention: the work and the answer are bounded ------------------------------------------

@pytest.fixture
def many_heads_session(tiny_assets, tmp_path):
    """An imported model shaped like roberta-base where it matters here (12 layers × 12 heads,
    514 positions) but 24 wide, so it is cheap to build and run."""
    from roberta.ui.model_import import import_checkpoint

    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=24, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=48,
                           max_position_embeddings=514)
    folder = tmp_path / "many-heads"
    RobertaForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    upload = tmp_path / "many-heads.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in folder.iterdir():
            archive.write(file, file.name)
    session, *_ = import_checkpoint({}, str(upload), None)
    return session


LONG_TEXT = " ".join(["The cat sat on the mat and the dog was quick."] * 60) + " A <mask> day."


def answer_bytes(*outputs) -> int:
    return sum(len(o) if isinstance(o, str) else len(o.to_json()) for o in outputs)


def test_attention_on_many_heads_reads_a_window_within_the_cap(many_heads_session,
                                                               monkeypatch):
    import gradio as gr

    from roberta.ui import attention_tab
    from roberta.ui.limits import current_limits

    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)
    name = "Imported: many-heads"
    head_view, model_view, single, summary, rollout, _, _ = attention_tab.show_attention(
        LONG_TEXT, name, 12, 12, [], many_heads_session)
    tokens = len(single.data[0].z)
    longest = attention_tab.attention_tokens(12, 12)
    assert tokens == longest < 514  # the window the cap allows, not the model's 514
    assert 12 * 12 * tokens ** 2 <= current_limits().max_attention_values
    assert "12 layers × 12 heads" in warnings[0] and f"at most {longest - 2:,} tokens" in \
        warnings[0]
    # bertviz's share: it writes every weight into the page, so it is left out here.
    assert "bertviz's views are drawn for texts of up to" in head_view
    assert head_view == model_view and "<iframe" not in head_view
    assert answer_bytes(head_view, model_view, single, summary, rollout) < 2_000_000

    heatmap = attention_tab.show_head(LONG_TEXT, name, 3, 4, [], many_heads_session)
    assert len(heatmap.data[0].z) == longest
    assert answer_bytes(heatmap) < 1_000_000


def test_bertviz_draws_a_short_text_of_a_small_model_and_caps_a_big_one(many_heads_session):
    from roberta.ui import attention_tab

    short = "The cat sat on the <mask>."
    head_view, *_ = attention_tab.show_attention(short, "Embedded masked LM", 1, 1, [], {})
    assert "<iframe" in head_view  # the embedded nano model: drawn
    head_view, *_ = attention_tab.show_attention(" ".join([short] * 5), "Imported: many-heads",
                                                 1, 1, [], many_heads_session)
    bertviz_tokens = math.isqrt(attention_tab.MAX_BERTVIZ_VALUES // 144)
    assert f"up to {bertviz_tokens} tokens with a model of 12 layers × 12 heads" in head_view


# --- numbers that are not numbers, through the server ----------------------------------------

def app_error(call) -> str:
    """The message an endpoint answers with: plain, no traceback, no server path."""
    import html
    import tempfile

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        call()
    message = html.unescape(str(caught.value))
    assert "Traceback" not in message and 'File "' not in message, message
    assert "upstream Gradio app has raised" not in message, message
    assert tempfile.gettempdir() not in message, message
    return message


MASKED = "The food was <mask>."
TOO_BIG_SEED = 2**70


@pytest.mark.parametrize("call, expected", [
    (lambda c: c.predict(MASKED, top_k="abc", api_name="/fill_mask"),
     "“Guesses per mask (top-k)” must be a number, not 'abc'"),
    (lambda c: c.predict(MASKED, layer="abc", api_name="/attention"),
     "must be a number, not 'abc'"),
    (lambda c: c.predict(MASKED, head="two", api_name="/attention_head"),
     "must be a number, not 'two'"),
    (lambda c: c.predict("abc", api_name="/train"), "“Steps” must be a number, not 'abc'"),
    (lambda c: c.predict("abc", api_name="/finetune"), "“Steps” must be a number, not 'abc'"),
    (lambda c: c.predict(3, seed=TOO_BIG_SEED, api_name="/train"),
     "Seed must be between 0 and 2147483647"),
    (lambda c: c.predict(3, seed=TOO_BIG_SEED, api_name="/finetune"),
     "“Seed” must be a whole number between"),
    (lambda c: c.predict(MASKED, seed=TOO_BIG_SEED, api_name="/mask_pattern"),
     "“Seed” must be a whole number between"),
    (lambda c: c.predict(3, learning_rate="fast", api_name="/train"), "must be a number"),
    (lambda c: c.predict("Nobody's model", api_name="/model_info"),
     "There is no model called “Nobody's model”"),
])
def test_wrong_values_are_plain_messages(client, call, expected):
    assert expected in app_error(lambda: call(client))


@pytest.mark.parametrize("call, expected", [
    (lambda c: c.predict(MASKED, top_k=None, api_name="/fill_mask"),
     "“Guesses per mask (top-k)” must be a number, not None"),
    (lambda c: c.predict(MASKED, layer=None, api_name="/attention"),
     "must be a number, not None"),
    (lambda c: c.predict(MASKED, head=None, api_name="/attention_head"),
     "must be a number, not None"),
    (lambda c: c.predict(MASKED, seed=None, api_name="/mask_pattern"),
     "“Seed” must be a number, not None"),
    (lambda c: c.predict(MASKED, mlm_probability=None, api_name="/mask_pattern"),
     "must be a number, not None"),
    (lambda c: c.predict(MASKED, model_name=["a", "b"], api_name="/fill_mask"),
     "must be one choice, not"),
    (lambda c: c.predict("Great food.", model_name={"x": 1}, api_name="/classify"),
     "must be one choice, not"),
    (lambda c: c.predict(MASKED, heads_off=7, api_name="/attention"),
     "must be a list of choices, not '7'"),
    (lambda c: c.predict(MASKED, heads_off=[["L1H1"]], api_name="/attention"),
     "must be a list of choices"),
])
def test_none_lists_and_objects_are_plain_messages(client, call, expected):
    """Issue #31's generic errors: None where a number goes, a list or an object where one
    choice goes, a number where a list goes."""
    assert expected in app_error(lambda: call(client))


@pytest.mark.parametrize("call, expected", [
    (lambda c: c.predict(3, corpus="zzz", api_name="/train"),
     "“Text to learn from” must be one of bundled, upload, pasted; not 'zzz'."),
    (lambda c: c.predict(3, precision=["fp32"], api_name="/train"),
     "“Precision” must be one choice, not"),
    (lambda c: c.predict(3, whole_word="yes", api_name="/train"),
     "“Whole-word masking” must be true or false, not 'yes'."),
    (lambda c: c.predict(3, dataset="zzz", api_name="/finetune"),
     "“Data” must be one of"),
])
def test_a_value_that_is_not_a_choice_is_refused_quietly(client, capfd, call, expected):
    """Gradio's own refusal ("not in the list of choices") printed a traceback; the guard
    refuses first, in a sentence naming the field, and nothing is printed."""
    capfd.readouterr()
    assert expected in app_error(lambda: call(client))
    assert "Traceback" not in capfd.readouterr().err


def test_anything_but_a_file_where_a_file_goes_is_a_plain_message(client):
    for value in ("abc", 7, ["a", "b"], {"x": 1}):
        message = app_error(lambda v=value: client.predict(upload=v,
                                                           api_name="/import_checkpoint"))
        assert "“Import a checkpoint (.zip)” must be an uploaded file" in message


@pytest.mark.slow  # 150 calls, one at a time
def test_a_sample_of_the_bad_input_sweep_is_plain_and_leaves_no_traceback(app_url, capfd):
    """Issue #31: bench/bad_inputs.py sends every endpoint × every argument × every class of
    bad value (types, None, lists, objects, NaN and infinities, huge numbers, deep nesting, odd
    Unicode, a server path where a file goes, huge strings) and malformed bodies, ~2,200 calls;
    a systematic sample of 150 of them here: no generic error, no call left unanswered, and the
    server prints no traceback. The endpoints that start a training run are left to the bench
    (a value they accept trains, on the bundled data, minutes to prepare the first time); their
    bad values are covered above and in test_ui_*."""
    from bench.bad_inputs import (
        BAD_BODIES,
        BAD_VALUES,
        RUN_BASELINES,
        bad_calls,
        endpoints,
        sample,
        sweep,
    )

    apis = {api: ps for api, ps in endpoints(app_url).items() if api not in RUN_BASELINES}
    calls = bad_calls(apis)
    assert len(calls) >= 1_000
    chosen = sample(calls, 150)
    assert {c.api for c in chosen} == set(apis)  # every endpoint
    assert {c.value for c in chosen} == set(BAD_VALUES) | set(BAD_BODIES)  # every kind
    capfd.readouterr()
    result = sweep(app_url, chosen, say=lambda text: None)
    assert result["total"]["generic"] == result["total"]["no_answer"] == 0, result["findings"]
    assert result["total"]["plain"] > 50  # most are refused, each in a sentence
    assert "Traceback" not in capfd.readouterr().err


def raw_call(app_url: str, api_name: str, body: str) -> dict:
    """POST a JSON body as a raw HTTP client may write it (NaN included), and read the answer
    of Gradio's two-step call API."""
    import httpx

    base = f"{app_url}gradio_api/call/{api_name}"
    event = httpx.post(base, content=body, headers={"content-type": "application/json"})
    event.raise_for_status()
    with httpx.stream("GET", f"{base}/{event.json()['event_id']}", timeout=120) as answer:
        lines = [line for line in answer.iter_lines() if line.startswith(("event:", "data:"))]
    kind = next(line for line in lines if line.startswith("event:")).split(":", 1)[1].strip()
    data = json.loads(next(line for line in lines if line.startswith("data:")).split(":", 1)[1])
    return {"event": kind, "data": data}


@pytest.mark.parametrize("api_name, data, expected", [
    ("fill_mask", f'["{MASKED}", "Embedded masked LM", NaN]', "must be a finite number"),
    ("attention_head", f'["{MASKED}", "Embedded masked LM", NaN, 1, []]',
     "must be a finite number"),
    ("attention", f'["{MASKED}", "Embedded masked LM", 1, Infinity, []]',
     "must be a finite number"),
    ("mask_pattern", f'["{MASKED}", NaN, 0.15, 0.8, 0.1, 1, 0, "Embedded masked LM"]',
     "must be a finite number"),
])
def test_nan_from_a_raw_client_is_a_plain_message(app_url, api_name, data, expected):
    answer = raw_call(app_url, api_name, '{"data": ' + data + '}')
    assert answer["event"] == "error"
    assert expected in answer["data"]["error"]


SERVER_PATH = '{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}'


@pytest.mark.parametrize("api_name, data, expected", [
    ("fill_mask", f'[{SERVER_PATH}, "Embedded masked LM", 5]', "names a file on the server"),
    ("import_checkpoint", f'[{SERVER_PATH}, "Embedded masked LM"]', "names a file on the server"),
    ("classify", "[]", "does not send a value for each of the endpoint's parameters"),
    ("fill_mask", f'["{MASKED}"]', "does not send a value for each of the endpoint's parameters"),
])
def test_refusals_gradio_makes_before_the_components_are_plain(app_url, capfd, api_name, data,
                                                               expected):
    """Found by bench/bad_inputs.py: a server path in any argument (Gradio looks for files in
    every value) and a call with too few values were refused with a traceback in the log."""
    capfd.readouterr()
    answer = raw_call(app_url, api_name, '{"data": ' + data + '}')
    assert answer["event"] == "error"
    assert expected in answer["data"]["error"] and "passwd" not in answer["data"]["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_nan_learning_rate_and_steps_are_refused_before_training(tiny_assets):
    """/train and /finetune take 30 and 13 inputs: their Number components are checked the
    same way (the preprocess Gradio calls), without writing every input in raw JSON."""
    import gradio as gr

    from roberta.ui.app import build_app

    demo = build_app()
    numbers = {b.label: b for b in demo.blocks.values() if isinstance(b, (gr.Number, gr.Slider))}
    for label in ("Steps", "Learning rate", "Layer (1–2)", "Seed"):
        with pytest.raises(gr.Error, match="must be a finite number"):
            numbers[label].preprocess(float("nan"))
    assert numbers["Steps"].preprocess(12.0) == 12  # a good value still converts


# --- messages never name the server's folders --------------------------------------------------

def test_an_import_error_names_the_file_not_the_servers_temp_folder(tiny_assets, tmp_path):
    import tempfile

    import gradio as gr

    from roberta.ui.model_import import import_checkpoint

    upload = tmp_path / "broken.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in (tiny_assets / "mlm").iterdir():
            data = file.read_bytes() if file.name != "config.json" else b"{not json"
            archive.writestr(file.name, data)
    with pytest.raises(gr.Error) as refused:  # read from the extracted folder, a server path
        import_checkpoint({}, str(upload), None)
    message = str(refused.value)
    assert "config.json is not valid JSON" in message and "roberta-import-" not in message
    assert tempfile.gettempdir() not in message


def test_server_paths_become_file_names():
    import os
    import tempfile

    from roberta.ui.common import without_server_paths

    temp, home = tempfile.gettempdir(), os.path.expanduser("~")
    assert without_server_paths(f"cannot read config {temp}/roberta-import-x1/c/config.json: "
                                f"bad") == "cannot read config config.json: bad"
    assert without_server_paths(f"“{home}/.cache/roberta-lab/imdb.whl” is missing") == \
        "“imdb.whl” is missing"
    assert without_server_paths("a word/with/slashes and /srv/data.txt stay") == \
        "a word/with/slashes and /srv/data.txt stay"


# --- a large CSV costs no more than the row cap ------------------------------------------------

def test_a_csv_over_the_row_cap_is_refused_after_reading_past_the_cap(tmp_path, monkeypatch):
    import pandas as pd

    from roberta.data import DataError
    from roberta.uploads import read_classification_csv

    upload = tmp_path / "big.csv"
    upload.write_text("text,label\n" + "".join(f"review number {i},{i % 2}\n"
                                               for i in range(5_000)))
    rows_parsed = []
    real_read_csv = pd.read_csv

    def counting_read_csv(*args, **kwargs):
        frame = real_read_csv(*args, **kwargs)
        rows_parsed.append(len(frame))
        return frame

    monkeypatch.setattr(pd, "read_csv", counting_read_csv)
    with pytest.raises(DataError, match="has more than 1,000 rows, the most fine-tuned on here"):
        read_classification_csv(upload, max_rows=1_000)
    assert rows_parsed == [1_001]  # not the 5,000 the file has
    assert len(read_classification_csv(upload, max_rows=5_000).train_texts) == 5_000


def test_the_finetune_tab_applies_the_row_cap(tiny_assets, tmp_path, monkeypatch):
    from roberta.data import DataError
    from roberta.ui.finetune_job import FinetuneSettings, load_dataset
    from roberta.ui.limits import ENV_MAX_CSV_ROWS

    monkeypatch.setenv(ENV_MAX_CSV_ROWS, "40")
    upload = tmp_path / "reviews.csv"
    upload.write_text("text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(41)))
    with pytest.raises(DataError, match="more than 40 rows"):
        load_dataset(FinetuneSettings(dataset="csv", csv_file=str(upload)))
    monkeypatch.setenv(ENV_MAX_CSV_ROWS, "41")
    assert "41 rows" in load_dataset(FinetuneSettings(dataset="csv", csv_file=str(upload)))[2]


def test_an_imported_upload_is_deleted_and_a_second_press_says_so(tiny_assets, tmp_path,
                                                                   monkeypatch):
    import gradio as gr

    from roberta.ui.model_import import import_checkpoint

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = tmp_path / "gradio" / "0123abcd" / "model.zip"  # as Gradio stores an upload
    upload.parent.mkdir(parents=True)
    with zipfile.ZipFile(upload, "w") as archive:
        for file in (tiny_assets / "mlm").iterdir():
            archive.write(file, file.name)
    session, *_ = import_checkpoint({}, str(upload), None)
    assert "Imported: model" in registry.choices(session, "mlm")
    assert not upload.parent.exists()
    with pytest.raises(gr.Error, match="no longer on the server.*choose the .zip again"):
        import_checkpoint(session, str(upload), None)


# --- the server's log: a visitor's mistake is one line, not a traceback -----------------------

def test_a_visitors_mistake_is_one_info_line_in_the_log(client, capfd, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="roberta.ui"):
        app_error(lambda: client.predict(MASKED, "No such model", api_name="/fill_mask"))
        app_error(lambda: client.predict(MASKED, top_k="abc", api_name="/fill_mask"))
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused:")]
    assert [r.levelno for r in refusals] == [logging.INFO, logging.INFO]
    assert "No such model" in refusals[0].getMessage()
    assert all(r.exc_info is None for r in refusals)
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out


def test_the_host_settings_table_names_every_limit():
    from pathlib import Path

    from roberta.ui import limits

    page = Path(__file__).resolve().parents[1].joinpath("docs", "host-settings.md").read_text()
    table = page.split("# Settings for a shared host", 1)[1].split("\n\n", 3)[2]
    names = [v for k, v in vars(limits).items() if k.startswith("ENV_")]
    assert len(names) >= 11
    for name in names:
        assert f"| `{name}` |" in table, name


# --- memory of one training run ----------------------------------------------------------------

@pytest.mark.parametrize("call, who", [
    (lambda c: c.predict(3, api_name="/train"), "This run"),
    (lambda c: c.predict(3, api_name="/finetune"), "Fine-tuning this model"),
    (lambda c: c.predict("init", api_name="/compare"), ": This run"),  # "<side>: This run"
])
def test_a_run_over_the_memory_cap_is_refused_before_it_starts(client, monkeypatch, call, who):
    from roberta.ui.limits import ENV_MAX_REQUEST_MB

    monkeypatch.setenv(ENV_MAX_REQUEST_MB, "1")  # the app reads its limits on every call
    message = app_error(lambda: call(client))
    assert re.search(re.escape(who) + r" would need about [\d,]+ MB of memory per training "
                     r"step \(a \d+ × \d+ batch\), more than the 1 MB", message), message
    assert "Lower the batch size, the sequence length or the model size" in message, message


def test_the_training_estimate_grows_with_batch_length_and_size():
    from roberta.training.memory import training_memory_bytes

    def estimate(preset="micro", batch=8, length=128, **kw):
        return training_memory_bytes(RobertaConfig.preset(preset, seq_length=length), batch,
                                     length, **kw)

    assert estimate(batch=16) > estimate(batch=8)
    assert estimate(length=256) > estimate(length=128)
    assert estimate("tiny") > estimate("micro")
    assert estimate(mask_rate=0.4) > estimate(mask_rate=0.15)
    assert estimate(task="classify") < estimate(task="mlm")  # no vocabulary-wide logits
    # The parameters' state alone: fp32 weights, grads and AdamW's two moments, 16 bytes each.
    config = RobertaConfig.preset("small")
    assert training_memory_bytes(config, 1, 8) > 16 * RobertaForMaskedLM.parameter_count(config)
    with pytest.raises(ValueError, match="task must be mlm or classify"):
        estimate(task="ner")


def test_the_default_first_minute_run_is_well_under_the_memory_cap(tiny_assets, monkeypatch):
    from roberta.training.memory import training_memory_bytes
    from roberta.training.pretrain_settings import PretrainSettings, model_config
    from roberta.ui.limits import ENV_MAX_REQUEST_MB, Limits, current_limits
    from roberta.ui.pretrain_job import validate

    monkeypatch.delenv(ENV_MAX_REQUEST_MB, raising=False)
    assert Limits.from_env(gpu=False).max_request_bytes == Limits.from_env(gpu=True) \
        .max_request_bytes == 1024 * 2**20
    settings, _ = validate(PretrainSettings())  # passes the check
    estimate = training_memory_bytes(model_config(settings, settings.vocab_size),
                                     settings.batch_size, settings.seq_length)
    assert estimate < current_limits().max_request_bytes / 4
