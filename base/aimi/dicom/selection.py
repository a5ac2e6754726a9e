"""Series selection as data: rules over DICOM attributes (and a few derived ones), each failing with a reason.

A rule is a mapping with `attribute` and one operator, as written in a model's workflow YAML:

    - {attribute: Modality, in: [CT]}
    - {attribute: ImageType, contains: ORIGINAL}
    - {attribute: SeriesDescription, not_matches: "(?i)dwi|adc"}
    - {attribute: EchoTime, min: 80}
    - {attribute: "@slices", min: 20}             # derived: number of slices
    - {attribute: "@obliquity_degrees", max: 10}  # derived: angle of the slice normal to the head-foot axis
    - {attribute: ContrastBolusAgent, present: true}
    - {any_of: [[rule, ...], [rule, ...]]}        # passes when every rule of one group passes
    - {preset: ct_axial_original}                 # a named rule set of selection_presets.yml
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset

from aimi.dicom.geometry import SeriesGeometry
from aimi.errors import ConfigError

DERIVED = ("@slices", "@obliquity_degrees")
PRESETS_FILE = Path(__file__).with_name("selection_presets.yml")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value]


def as_number(value: Any) -> float | None:
    """A header value as a number; None when it is absent or not numeric."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _in(actual: Any, expected: Any) -> bool:
    return str(actual) in {str(v) for v in expected}


def _contains(actual: Any, expected: Any) -> bool:
    return str(expected).upper() in {v.upper() for v in _as_list(actual)}


def _matches(actual: Any, expected: Any) -> bool:
    return re.search(str(expected), " ".join(_as_list(actual))) is not None


def _min(actual: Any, expected: Any) -> bool:
    number = as_number(actual)
    return number is not None and number >= float(expected)


def _max(actual: Any, expected: Any) -> bool:
    number = as_number(actual)
    return number is not None and number <= float(expected)


def _max_abs(actual: Any, expected: Any) -> bool:
    number = as_number(actual)
    return number is None or abs(number) <= float(expected)


def _present(actual: Any, expected: Any) -> bool:
    return bool(expected)


# operator -> (test, passes when the attribute is absent, wording of a failure)
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], bool, str]] = {
    "in": (_in, False, "not one of"),
    "not_in": (lambda a, e: not _in(a, e), True, "one of"),
    "contains": (_contains, False, "does not contain"),
    "excludes": (lambda a, e: not _contains(a, e), True, "contains"),
    "matches": (_matches, False, "does not match"),
    "not_matches": (lambda a, e: not _matches(a, e), True, "matches"),
    "min": (_min, False, "is below"),
    "max": (_max, False, "is above"),
    "max_abs": (_max_abs, True, "exceeds in magnitude"),
    "present": (_present, False, "is present, rule"),
}


@dataclass(frozen=True)
class AnyOf:
    """Alternatives: the series passes when every rule of at least one group passes."""

    groups: tuple[tuple[Rule, ...], ...]

    @property
    def needs_geometry(self) -> bool:
        return any(rule.needs_geometry for group in self.groups for rule in group)

    def failure(self, header: Dataset, geometry: SeriesGeometry | None = None) -> str:
        reasons = [first_failure(group, header, geometry) for group in self.groups]
        if not all(reasons):
            return ""
        return "none of the alternatives holds: " + "; ".join(reasons)


@dataclass(frozen=True)
class Rule:
    attribute: str
    operator: str
    value: Any

    @property
    def needs_geometry(self) -> bool:
        return self.attribute in DERIVED

    def failure(self, header: Dataset, geometry: SeriesGeometry | None = None) -> str:
        """Empty when the series passes, else the reason it does not."""
        test, absent_passes, wording = OPERATORS[self.operator]
        actual = self._value(header, geometry)
        if actual is None or actual == "":
            if self.operator == "present":
                return f"{self.attribute} is missing" if self.value else ""
            return "" if absent_passes else f"{self.attribute} is missing (rule: {self.operator} {self.value!r})"
        if test(actual, self.value):
            return ""
        if self.operator == "present":
            return f"{self.attribute} is present ({actual})"
        shown = "\\".join(_as_list(actual)) if not isinstance(actual, float) else f"{actual:.1f}"
        return f"{self.attribute} '{shown}' {wording} {self.value!r}"

    def _value(self, header: Dataset, geometry: SeriesGeometry | None) -> Any:
        if self.attribute == "@slices":
            return geometry.size[2] if geometry else None
        if self.attribute == "@obliquity_degrees":
            return geometry.obliquity_degrees() if geometry else None
        return header.get(self.attribute)


def parse_rules(raw: Any, where: str) -> list[Rule | AnyOf]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of rules like {{attribute: Modality, in: [CT]}}")
    rules: list[Rule | AnyOf] = []
    for index, item in enumerate(raw):
        if isinstance(item, Mapping) and set(item) == {"preset"}:
            rules += parse_rules(_preset(item["preset"], f"{where}[{index}]"), f"{PRESETS_FILE.name}:{item['preset']}")
        else:
            rules.append(_parse_rule(item, f"{where}[{index}]"))
    return rules


def _preset(name: Any, where: str) -> list[Any]:
    presets = yaml.safe_load(PRESETS_FILE.read_text())
    if name not in presets:
        raise ConfigError(f"{where}: unknown preset {name!r}; valid presets: {', '.join(sorted(presets))}")
    return presets[name]


def _parse_rule(item: Any, where: str) -> Rule | AnyOf:
    if isinstance(item, Mapping) and set(item) == {"any_of"}:
        groups = item["any_of"]
        if not isinstance(groups, list) or len(groups) < 2:
            raise ConfigError(f"{where}.any_of: expected a list of at least two rule lists")
        return AnyOf(tuple(tuple(parse_rules(g, f"{where}.any_of[{i}]")) for i, g in enumerate(groups)))
    if not isinstance(item, Mapping) or "attribute" not in item:
        raise ConfigError(f"{where}: a rule is a mapping with 'attribute' and one operator, or {{any_of: [...]}}")
    attribute = item["attribute"]
    if attribute not in keyword_dict and attribute not in DERIVED:
        raise ConfigError(f"{where}: {attribute!r} is neither a DICOM keyword nor one of {', '.join(DERIVED)}")
    operators = [key for key in item if key != "attribute"]
    if len(operators) != 1 or operators[0] not in OPERATORS:
        raise ConfigError(f"{where}: give exactly one operator; valid operators: {', '.join(OPERATORS)}")
    operator = operators[0]
    value = item[operator]
    if operator in ("matches", "not_matches"):
        try:
            re.compile(str(value))
        except re.error as error:
            raise ConfigError(f"{where}: invalid regular expression {value!r}: {error}") from None
    if operator in ("min", "max", "max_abs") and as_number(value) is None:
        raise ConfigError(f"{where}: {operator} needs a number, got {value!r}")
    return Rule(str(attribute), operator, value)


def first_failure(rules: Sequence[Rule | AnyOf], header: Dataset, geometry: SeriesGeometry | None) -> str:
    """The reason of the first failing rule, checking only rules whose inputs are available."""
    for rule in rules:
        if rule.needs_geometry and geometry is None:
            continue
        reason = rule.failure(header, geometry)
        if reason:
            return reason
    return ""
