"""Settings declared once, where the library defines them: each a dataclass field whose metadata
says what a person calls it (a form's label, a command-line flag), what it means and what values
it may take. The app's forms and the command line's flags read these declarations, validation
checks them, and an error about a setting names it by a placeholder, so the app words it with
its label and the command line with its flag — no caller rewrites another's messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class TrainingError(ValueError):
    """Impossible settings or data for a run, in a plain sentence."""


class SettingError(TrainingError):
    """A setting (or a combination) a run cannot take. `template` names each setting as a
    `{field_name}` placeholder and each value as a `{keyword}` given here: str() says the field
    names (the library's own words), `worded(name_of)` a caller's ("the learning rate",
    "--lr")."""

    def __init__(self, template: str, **values: Any):
        self.template, self.values = template, values
        self.settings = tuple(name for _, name, _, _ in string.Formatter().parse(template)
                              if name and name not in values)
        super().__init__(self.worded(str))

    def worded(self, name_of: Callable[[str], str]) -> str:
        return self.template.format_map({**self.values,
                                         **{name: name_of(name) for name in self.settings}})


@dataclass(frozen=True)
class Setting:
    """What a setting is to a person, and the values it may take (None: no bound)."""

    label: str  # the control that sets it, as a sentence names it: "the learning rate"
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False  # the minimum itself is refused
    below: bool = False  # the maximum itself is refused
    choices: tuple = ()
    flag: str | None = None  # the command line's, where one sets it
    unset: str = ""  # what None means, where None is allowed: "150, or a tenth of the run"


def setting(default: Any, label: str, **declared: Any) -> Any:
    """A dataclass field declared as a setting (see Setting for the keywords)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("a mutable default would be shared: give a tuple")
    return field(default=default, metadata={"setting": Setting(label, **declared)})


def like(owner: type, name: str, default: Any = dataclasses.MISSING, **changed: Any) -> Any:
    """`owner`'s declaration of the setting `name` for another kind of run: the same label,
    bounds and flag, another default (a preset's) where `default` is given."""
    source = next(f for f in dataclasses.fields(owner) if f.name == name)
    declaration = dataclasses.replace(source.metadata["setting"], **changed)
    return field(default=source.default if default is dataclasses.MISSING else default,
                 metadata={"setting": declaration})


def declared(cls: type) -> dict[str, Setting]:
    """The declared settings of a dataclass, by field name, in field order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)
            if "setting" in f.metadata}


def whole_number_fields(cls: type) -> set[str]:
    """The fields annotated `int` (or `int | None`)."""
    return {f.name for f in dataclasses.fields(cls)
            if str(f.type).replace(" ", "") in ("int", "int|None")}


def check(settings: Any, names: Sequence[str] | None = None) -> None:
    """SettingError for the first declared setting of `settings` (of `names`, or all) that is
    not one of its choices, not a whole number where one is due, or outside its bounds."""
    cls, whole = type(settings), whole_number_fields(type(settings))
    for name, declaration in declared(cls).items():
        if names is None or name in names:
            check_value(name, getattr(settings, name), declaration, name in whole)


def check_value(name: str, value: Any, declaration: Setting, whole: bool = False) -> None:
    d = declaration
    if value is None and d.unset:
        return
    if d.choices:
        if value not in d.choices:
            raise SettingError(f"Unknown {{{name}}} {{value}}: choose one of {{options}}.",
                               options=", ".join(map(str, d.choices)), value=repr(value))
        return
    if d.minimum is None and d.maximum is None and not whole:
        return
    number_ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
    if whole and not (number_ok and isinstance(value, int)):
        raise SettingError(f"{{{name}}} must be a whole number, got {{value}}", value=repr(value))
    if not number_ok:
        raise SettingError(f"{{{name}}} must be a finite number, got {{value}}",
                           value=repr(value))
    low = d.minimum is not None and (value <= d.minimum if d.above else value < d.minimum)
    high = d.maximum is not None and (value >= d.maximum if d.below else value > d.maximum)
    if low or high:
        raise SettingError(f"{{{name}}} must be {{bounds}}, got {{value}}",
                           bounds=bounds_in_words(d), value=f"{value:g}" if
                           isinstance(value, float) else repr(value))


def bounds_in_words(d: Setting) -> str:
    """"above 0 and below 1", "at least 1", "between 0 and 2147483647"."""
    low, high = _number(d.minimum), _number(d.maximum)
    if d.minimum is not None and d.maximum is not None and not (d.above or d.below):
        return f"between {low} and {high}"
    parts = []
    if d.minimum is not None:
        parts.append(f"{'above' if d.above else 'at least'} {low}")
    if d.maximum is not None:
        parts.append(f"{'below' if d.below else 'at most'} {high}")
    return " and ".join(parts)


def _number(value: float | None) -> str:
    return str(value) if isinstance(value, int | None) else f"{value:g}"


def naming(*owners: type, by: str = "label") -> Callable[[str], str]:
    """A setting's name as the first of `owners` declaring it words it: its "label" (a form's)
    or its "flag" (the command line's); the field name itself where none does."""
    def name_of(name: str) -> str:
        for owner in owners:
            word = getattr(declared(owner).get(name), by, None)
            if word:
                return word
        return name
    return name_of


def add_flags(parser: argparse._ActionsContainer, owner: type, names: Sequence[str]) -> None:
    """A command-line flag for each of `owner`'s settings `names` that declares one, left None
    unless given (so the dataclass keeps every default) and saying its default in --help."""
    kinds = {f.name: str(f.type).split(" |")[0] for f in dataclasses.fields(owner)}
    defaults = {f.name: f.default for f in dataclasses.fields(owner)}
    for name in names:
        d = declared(owner)[name]
        shown = f"default: {d.unset if defaults[name] is None else defaults[name]}"
        kind = {"int": int, "float": float, "bool": bool}.get(kinds[name], str)
        extra = dict(action="store_true", default=None) if kind is bool else dict(type=kind)
        parser.add_argument(d.flag, dest=name, help="; ".join(filter(None, [d.help, shown])),
                            choices=list(d.choices) or None, **extra)
