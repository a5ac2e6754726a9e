"""Coded segment tables: what each label value of a model's label map means, as DICOM codes.

A model's workflow YAML lists its segments under the DsegConverter settings. Each entry
becomes one item of the SEG's SegmentSequence (Segmentation Image Module, PS3.3 C.8.20.2, whose items follow the
Segment Description Macro), so every rule is checked here, when the YAML is read, never when a SEG is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from highdicom.sr import CodedConcept

#: Coding scheme designators accepted in segment tables (standard designators of PS3.16 section 8, Table 8-1).
CODING_SCHEMES = ("SCT", "DCM", "NCIt", "LN", "UMLS", "FMA")

#: Largest label-map value a segment may have (uint16 label maps).
MAX_LABEL = 65535

#: Longest SegmentLabel (VR LO, PS3.5 section 6.2) and CodeMeaning (VR LO).
MAX_LO_LENGTH = 64

_REQUIRED_KEYS = ("label", "name", "category", "type")
_OPTIONAL_CODE_KEYS = ("modifier", "region")
_OPTIONAL_KEYS = ("rgb", "description")
_CODE_KEYS = ("scheme", "value", "meaning")


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: the label-map value and the codes that describe it in the SEG.

    `category` -> SegmentedPropertyCategoryCodeSequence (CID 7150), `type` -> SegmentedPropertyTypeCodeSequence
    (CID 7151), `modifier` -> SegmentedPropertyTypeModifierCodeSequence inside the type item (e.g. SCT 51440002
    "Right and left"), `region` -> AnatomicRegionSequence (CID 4), `rgb` -> RecommendedDisplayCIELabValue (the
    colour viewers show it in; without it dcmqi and OHIF give every segment one default), `description` ->
    SegmentDescription (as the published SEGs spell it, where that differs from the label).
    """

    label: int
    name: str
    category: CodedConcept
    type: CodedConcept
    modifier: CodedConcept | None = None
    region: CodedConcept | None = None
    rgb: tuple[int, int, int] | None = None
    description: str | None = None


def parse_segments(raw: object, where: str) -> list[SegmentSpec]:
    """Validate a segment table read from YAML; a ValueError names `where`, the entry, the key and the rule."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: must be a non-empty list of segments, got {_describe(raw)}")
    specs = [_parse_segment(entry, f"{where}[{i}]") for i, entry in enumerate(raw)]
    _check_unique(specs, where, "label")
    _check_unique(specs, where, "name")
    return specs


def _parse_segment(entry: object, where: str) -> SegmentSpec:
    mapping = _mapping(entry, where, _REQUIRED_KEYS + _OPTIONAL_CODE_KEYS + _OPTIONAL_KEYS, _REQUIRED_KEYS)
    codes = {key: _parse_code(mapping[key], f"{where}.{key}") if key in mapping else None
             for key in _OPTIONAL_CODE_KEYS}
    return SegmentSpec(
        label=_parse_label(mapping["label"], f"{where}.label"),
        name=_parse_text(mapping["name"], f"{where}.name"),
        category=_parse_code(mapping["category"], f"{where}.category"),
        type=_parse_code(mapping["type"], f"{where}.type"),
        modifier=codes["modifier"],
        region=codes["region"],
        rgb=_parse_rgb(mapping["rgb"], f"{where}.rgb") if "rgb" in mapping else None,
        description=_parse_text(mapping["description"], f"{where}.description") if "description" in mapping
        else None,
    )


def _parse_rgb(raw: object, where: str) -> tuple[int, int, int]:
    """A display colour as [red, green, blue], each 0-255 (dcmqi's recommendedDisplayRGBValue)."""
    if (not isinstance(raw, list) or len(raw) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in raw)):
        raise ValueError(f"{where}: must be [red, green, blue], three integers 0-255, got {raw!r}")
    return (raw[0], raw[1], raw[2])


def _parse_code(raw: object, where: str) -> CodedConcept:
    """A code as {scheme, value, meaning}; the Code Sequence Macro (PS3.3 Table 8.8-1) needs all three."""
    mapping = _mapping(raw, where, _CODE_KEYS, _CODE_KEYS)
    scheme = mapping["scheme"]
    if scheme not in CODING_SCHEMES:
        raise ValueError(f"{where}.scheme: {scheme!r} is not a known coding scheme; use one of {list(CODING_SCHEMES)}")
    return CodedConcept(
        value=_parse_text(mapping["value"], f"{where}.value"),
        scheme_designator=scheme,
        meaning=_parse_text(mapping["meaning"], f"{where}.meaning"),
    )


def _mapping(raw: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be a mapping with keys {list(allowed)}, got {_describe(raw)}")
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {list(allowed)}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}")
    return raw


def _parse_label(raw: object, where: str) -> int:
    """The label-map value: 1-65535 (0 is background, label maps are uint8/uint16); a YAML bool is refused."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LABEL:
        raise ValueError(f"{where}: must be a positive integer up to {MAX_LABEL} (a label-map value), got {raw!r}")
    return raw


def _parse_text(raw: object, where: str) -> str:
    """Non-empty text of at most 64 characters (VR LO); numbers must be quoted in YAML to keep leading zeros."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where}: must be a non-empty string (quote numbers in YAML), got {raw!r}")
    if len(raw) > MAX_LO_LENGTH:
        raise ValueError(f"{where}: longer than {MAX_LO_LENGTH} characters (DICOM VR LO): {raw!r}")
    return raw


def _check_unique(specs: list[SegmentSpec], where: str, field: str) -> None:
    """Labels must be unique to split the label map, names to key masks read back by SegmentLabel."""
    first_index: dict[object, int] = {}
    for i, spec in enumerate(specs):
        value = getattr(spec, field)
        if value in first_index:
            first = f"{where}[{first_index[value]}]"
            raise ValueError(f"{where}[{i}].{field}: duplicate {field} {value!r} (already used by {first})")
        first_index[value] = i


def _describe(raw: object) -> str:
    return f"{type(raw).__name__} {raw!r}"
