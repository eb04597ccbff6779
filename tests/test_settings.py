"""The settings model (roberta/settings.py): each setting declared once, in the library, and the
app, the command line, the experiments and the benchmarks all reading that declaration."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from roberta import cli, resume
from roberta.config import RobertaConfig
from roberta.masking import MaskingConfig
from roberta.settings import SettingError, declared, naming
from roberta.training.config import HOLD_WHOLE_RUN, FinetuneConfig, PretrainConfig, TrainConfig
from roberta.training.pretrain_settings import ONE_MINUTE_RUN, PretrainSettings, resolve

ROBERTA = Path(__file__).resolve().parents[1] / "roberta"
# Every kind of run's settings, library-side (the Sentiment tab's form is still in ui/).
RUN_CLASSES = (TrainConfig, PretrainConfig, FinetuneConfig, MaskingConfig, PretrainSettings)


def test_one_error_is_worded_by_the_app_with_labels_and_by_the_cli_with_flags():
    with pytest.raises(SettingError) as caught:
        PretrainConfig(learning_rate=5.0).validate()
    err = caught.value
    assert str(err) == "learning_rate must be above 0 and below 1, got 5"  # the library's
    assert err.worded(naming(PretrainSettings)) == \
        "the learning rate must be above 0 and below 1, got 5"
    assert err.worded(resume.FLAG_OF) == "--lr must be above 0 and below 1, got 5"


def test_a_combination_names_each_setting_it_involves():
    with pytest.raises(SettingError) as caught:
        RobertaConfig(hidden_size=100, num_attention_heads=3).validate()
    assert caught.value.settings == ("hidden_size", "num_attention_heads")
    assert caught.value.worded(resume.FLAG_OF) == "--hidden (100) must be divisible by --heads (3)"


def test_the_command_lines_flags_are_the_declared_ones_with_their_defaults():
    pretrain = cli.build_parser()._subparsers._group_actions[0].choices["pretrain"]
    actions = {a.dest: a for a in pretrain._actions}
    for name in cli.TRAINING_FLAGS:
        d = declared(PretrainConfig)[name]
        assert d.flag in actions[name].option_strings
        shown = d.unset if getattr(PretrainConfig, name) is None else getattr(PretrainConfig,
                                                                             name)
        assert f"default: {shown}" in actions[name].help
    assert actions["mlm_probability"].option_strings == ["--mask-rate"]
    assert actions["hold_positions_steps"].default == HOLD_WHOLE_RUN


def test_the_mask_rate_has_one_range_everywhere():
    library = declared(MaskingConfig)["mlm_probability"]
    assert declared(PretrainSettings)["mlm_probability"] == library
    assert (library.minimum, library.maximum) == (0, 1)
    resolve(dataclasses.replace(ONE_MINUTE_RUN, mlm_probability=0.8))  # the app takes it now
    for outside in (0.0, 1.0):
        with pytest.raises(SettingError, match="mlm_probability must be above 0 and below 1"):
            resolve(dataclasses.replace(ONE_MINUTE_RUN, mlm_probability=outside))


def test_a_warmup_as_long_as_the_run_is_revalued_the_same_for_the_cli_and_the_app():
    from roberta.ui.pretrain_job import validate

    app, warnings = validate(dataclasses.replace(ONE_MINUTE_RUN, max_steps=60, warmup_steps=150))
    library, notes = PretrainConfig(max_steps=60, warmup_steps=150).resolved(hidden_size=128)
    assert app.warmup_steps == library.warmup_steps == 6
    assert warnings == notes and "a tenth of the run" in notes[0]


def test_the_structured_start_holds_its_positions_for_the_whole_run_by_default():
    assert ONE_MINUTE_RUN.hold_positions_steps == HOLD_WHOLE_RUN == -1
    assert PretrainConfig.hold_for("structured") == HOLD_WHOLE_RUN
    assert cli.build_parser().parse_args(["pretrain", "--out", "x"]).hold_positions_steps == \
        HOLD_WHOLE_RUN


# --- every default written once ----------------------------------------------------------------

def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _literal  # not a literal


def default_copies(root: Path = ROBERTA) -> list[str]:
    """Places in roberta/ that give a run setting, by its name, a literal equal to one of its
    declared defaults without reading the declaration: a class field's default (not a
    declaration), a function parameter's default, or an entry of a module-level *_SETTINGS
    dict. A seed of 0 (every generator's neutral start) and a device ("cpu", "auto": where a
    function's tensors live) are not tuned defaults: not counted."""
    defaults: dict[str, list] = {}
    for cls in RUN_CLASSES:
        for f in dataclasses.fields(cls):
            if f.name in declared(cls) and f.name not in ("seed", "device"):
                defaults.setdefault(f.name, []).append(f.default)
    copies = []

    def note(path: Path, name: str | None, node: ast.AST) -> None:
        value = _literal(node)
        if name in defaults and value is not _literal and not isinstance(value, bool) and \
                value in defaults[name]:
            copies.append(f"{path.relative_to(root.parent)}:{node.lineno} {name}={value!r}")

    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and item.value is not None and \
                            isinstance(item.target, ast.Name):
                        note(path, item.target.id, item.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args
                for arg, value in zip(args[len(args) - len(node.args.defaults):],
                                      node.args.defaults, strict=True):
                    note(path, arg.arg, value)
                for arg, value in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True):
                    if value is not None:
                        note(path, arg.arg, value)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                    node.value, ast.Dict) and any(
                    isinstance(t, ast.Name) and t.id.endswith("_SETTINGS")
                    for t in getattr(node, "targets", [getattr(node, "target", None)])):
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(key, ast.Constant):
                        note(path, key.value, value)
    return copies


def test_no_run_default_is_written_twice():
    assert default_copies() == []


def test_the_scan_finds_a_copy(tmp_path):
    """The scan above sees a second copy of a default: it is not vacuous."""
    (tmp_path / "roberta").mkdir()
    (tmp_path / "roberta" / "copy.py").write_text(
        "def mask(text, mlm_probability=0.15):\n    pass\n\n"
        "BASE_SETTINGS = {'batch_size': 8}\n")
    assert default_copies(tmp_path / "roberta") == ["roberta/copy.py:1 mlm_probability=0.15",
                                                    "roberta/copy.py:4 batch_size=8"]


def another_value(value, declaration):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1 if isinstance(value, int) else value / 2
    if value is None:
        return 3
    if isinstance(value, tuple):
        return value[:1]
    return next(c for c in declaration.choices if c != value)


def test_every_train_tab_setting_the_engine_shares_reaches_its_config():
    """A setting added to PretrainSettings with the engine's name (`like`) must be passed on by
    pretrain_config: this fails until it is (with the form's control, that is the whole change:
    docs/design.md, "Adding a setting")."""
    from roberta.training.pretrain_settings import pretrain_config

    shared = {f.name for cls in (PretrainConfig, MaskingConfig) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(PretrainSettings):
        if f.name not in shared or f.name == "hold_positions_steps":  # hold: by the start
            continue
        other = another_value(getattr(ONE_MINUTE_RUN, f.name),
                              declared(PretrainSettings).get(f.name))
        config = pretrain_config(dataclasses.replace(ONE_MINUTE_RUN, **{f.name: other}))
        reached = getattr(config.masking if hasattr(config.masking, f.name) else config, f.name)
        assert reached == other, f.name
