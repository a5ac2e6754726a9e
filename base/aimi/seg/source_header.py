"""The source header highdicom copies into a SEG, made valid for its VR and VM first.

highdicom copies the first source image's Patient, General Study, Patient Study and Clinical Trial Subject/Study
modules as they are (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2, C.7.1.3, C.7.2.3) and reads SliceThickness for the Pixel
Measures. Real archives hold values no SEG may carry: control characters, a backslash in a name or an ID (two
values where one is allowed), dates like "2020-13-45", PatientSex "Male", an AS "45 Y", half a clinical-trial module,
a SliceThickness of 0. Some make an invalid SEG, others make highdicom raise after inference with the value in its
message. `source_for_seg` works on a copy of the first dataset (the source datasets other steps use are left
alone) and returns what it changed as notes that name the attribute and the rule, never the value.

What a copy gets:
- text decoded with the source's SpecificCharacterSet (ISO 2022 code extensions included; an unknown term is read
  as Latin-1, as pydicom does); the SEG declares ISO_IR 192 only where its text is not ASCII (writer.py), so escape
  sequences are never needed and every control character left after decoding is removed (LT, ST, UT keep TAB, LF,
  FF and CR, PS3.5 6.1.3);
- an attribute of VM 1 with several values keeps the first; a PN keeps three component groups of five components;
- a value that does not parse for its VR (AS, CS, DA, DS, DT, IS, TM, AE, UR; PatientSex M/F/O as highdicom
  enforces it) is left empty where the attribute is Type 2 and dropped otherwise; a DS longer than 16 characters
  is rewritten;
- a missing Type 2 attribute of the Patient and General Study modules is written empty (highdicom needs it);
- a Clinical Trial Subject or Study module is copied whole or not at all (its Type 1 attributes present and valid);
- SliceThickness (and SpacingBetweenSlices) missing, non-numeric, non-finite or <= 0: the slice step of the positions.
"""

from __future__ import annotations

import copy
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from highdicom import PatientSexValues
from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map
from pydicom.charset import STAND_ALONE_ENCODINGS, decode_bytes, default_encoding, python_encoding
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import DA, DT, TEXT_VR_DELIMS, TM, VALIDATORS, format_number_as_ds

from aimi.dicom.geometry import slice_normal

#: The Information Entities whose modules highdicom copies (Patient, Clinical Trial Subject; General Study, Patient
#: Study, Clinical Trial Study) and the modules of a CT or MR image, used where the SOP class is unknown.
COPIED_IES = ("Patient", "Study")
DEFAULT_MODULES = ("patient", "clinical-trial-subject", "general-study", "patient-study", "clinical-trial-study")
#: Modules whose missing Type 2 attributes are written empty: highdicom reads them as attributes.
MANDATORY_MODULES = ("patient", "general-study")
#: Text VRs whose bytes follow SpecificCharacterSet (PS3.5 6.1.2.3); other string VRs hold the default repertoire.
CHARSET_VRS = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN"})
#: VRs whose value is one string, backslash included (PS3.5 6.2).
SINGLE_VALUE_VRS = frozenset({"ST", "LT", "UT", "UR"})
STRING_VRS = CHARSET_VRS | frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UR"})
#: Control characters a text VR may hold (PS3.5 6.1.3); ESC only as part of a code extension, gone after decoding.
TEXT_CONTROLS = {"LT": "\t\n\f\r", "ST": "\t\n\f\r", "UT": "\t\n\f\r"}
#: Enumerated values highdicom enforces when it builds the SEG (others it copies as they are).
ENUMERATED = {"PatientSex": frozenset(v.value for v in PatientSexValues)}
#: Type 1C attributes at least one of which a present module needs (PS3.3 C.7.1.3).
ONE_OF = {"clinical-trial-subject": ("ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID")}
#: Attributes only allowed with another one (whose condition is their presence), PS3.3 C.7.1.1, C.7.1.3, C.7.2.3.
NEEDS = {
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber": "ClinicalTrialProtocolEthicsCommitteeName",
    "PatientBirthDateInAlternativeCalendar": "PatientAlternativeCalendar",
    "PatientDeathDateInAlternativeCalendar": "PatientAlternativeCalendar",
    "LongitudinalTemporalOffsetFromEvent": "LongitudinalTemporalEventType",
}
IS_RANGE = (-(2**31), 2**31 - 1)
UTF8 = "ISO_IR 192"
_DROP = object()


class SegEncodingError(ValueError):
    """The SEG cannot be built from these source headers; the text names the attribute and the rule, or the type of
    the library's exception, never a header value."""


@dataclass
class _Context:
    encodings: list[str]
    changes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, where: str, what: str) -> None:
        self.changes.setdefault(where, []).append(what)

    @property
    def notes(self) -> list[str]:
        """One line per attribute: `Keyword: what was done; what else`."""
        return [f"{where}: {'; '.join(whats)}" for where, whats in self.changes.items()]


def source_for_seg(source_datasets: Sequence[Dataset]) -> tuple[Dataset, list[str]]:
    """A copy of `source_datasets[0]` (the dataset highdicom copies the patient and study from) with valid values,
    and one note per attribute changed or dropped, naming the attribute and the rule but never the value. The
    datasets given are not changed."""
    first = source_datasets[0]
    clone = Dataset()
    for tag in first.keys():  # noqa: SIM118 - iterating a Dataset would decode every element
        clone[tag] = first.get_item(tag)
    if hasattr(first, "file_meta"):
        clone.file_meta = first.file_meta
    encodings, charset_note = _resolve_character_set(first, clone)
    context = _Context(encodings)
    if charset_note:
        context.note("SpecificCharacterSet", charset_note)
    for module in _copied_modules(clone):
        _clean_module(clone, module, context)
    _usable_slice_measures(clone, source_datasets, context)
    return clone, context.notes


def _resolve_character_set(source: Dataset, clone: Dataset) -> tuple[list[str], str]:
    """The Python encodings of the source's SpecificCharacterSet, as pydicom reads it (an empty first term with code
    extensions, valid DICOM that highdicom refuses, is the default repertoire), and a note where a term is unknown:
    pydicom reads text of an unknown first term as Latin-1, and the copy then declares ISO_IR 100 so that no further
    read of it warns (warnings of pydicom may quote values). The SEG's own character set is chosen from its text
    (writer.declare_character_set)."""
    tag = tag_for_keyword("SpecificCharacterSet")
    terms = _texts(source, tag, "CS", [default_encoding]) if tag in source else []
    if not any(terms):
        return [default_encoding], ""
    note = ""
    known = [term for term in terms if not term or term in python_encoding]
    if len(known) < len(terms):
        if known and known[0] == terms[0]:
            note = f"{len(terms) - len(known)} unknown code extension(s) ignored"
        else:
            note = "not a character set pydicom knows, text read as ISO_IR 100 (Latin-1)"
            known = ["ISO_IR 100"]
        clone.SpecificCharacterSet = known if len(known) > 1 else known[0]
    if known[0] in STAND_ALONE_ENCODINGS:
        known = known[:1]
    else:
        known = [known[0], *(term for term in known[1:] if term not in STAND_ALONE_ENCODINGS)]
    return [python_encoding[term or "ISO_IR 6"] for term in known], note


def _copied_modules(source: Dataset) -> list[tuple[str, list[tuple[str, str]]]]:
    """(module key, [(keyword, type)] of its root attributes) for each module highdicom copies from `source`."""
    attributes = get_module_attribute_map()
    iod = get_sop_class_iod_map().get(str(source.get("SOPClassUID", "")))
    keys = [m["key"] for m in get_iod_module_map()[iod] if m["ie"] in COPIED_IES] if iod else list(DEFAULT_MODULES)
    return [(key, [(str(a["keyword"]), str(a["type"])) for a in attributes[key] if not a["path"]]) for key in keys]


def _clean_module(clone: Dataset, module: tuple[str, list[tuple[str, str]]], context: _Context) -> None:
    """Clean the module's root attributes in `clone` (which still holds the source's elements, read from it so that
    the source datasets are not converted in place); copy a user-optional module whole or not at all."""
    key, attributes = module
    types = dict(attributes)
    for keyword, kind in attributes:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in clone:
            continue
        value = _clean_value(clone, tag, keyword, context, kind)
        if value is _DROP:
            del clone[tag]
        else:
            clone[tag] = value
    for keyword, needed in NEEDS.items():
        if keyword in types and keyword in clone and not _present(clone, needed):
            del clone[keyword]
            context.note(keyword, f"not allowed without {needed}, dropped")
    present = [kw for kw, _ in attributes if kw in clone]
    if key in MANDATORY_MODULES:
        for keyword, kind in attributes:
            if kind == "2" and keyword not in clone:
                clone[keyword] = DataElement(tag_for_keyword(keyword), dictionary_VR(keyword), None)
                context.note(keyword, "missing, written empty")
        return
    if not present:
        return
    missing = [kw for kw, kind in attributes if kind == "1" and not _present(clone, kw)]
    one_of = ONE_OF.get(key, ())
    if one_of and not any(_present(clone, kw) for kw in one_of):
        missing.append(" or ".join(one_of))
    title = " ".join(part.capitalize() for part in key.split("-"))
    if missing:
        for keyword in present:
            del clone[keyword]
        context.note(f"{title} module", f"incomplete ({', '.join(missing)} missing or invalid), not copied")
        return
    for keyword, kind in attributes:
        if kind == "2" and keyword not in clone:
            clone[keyword] = DataElement(tag_for_keyword(keyword), dictionary_VR(keyword), None)
            context.note(keyword, "missing from a present module, written empty")


def _present(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].value not in (None, "", [])


def _clean_value(source: Dataset, tag: int, where: str, context: _Context, kind: str) -> object:
    """The element to copy for `tag` of `source`, or _DROP."""
    vr = dictionary_VR(tag) if _in_dictionary(tag) else ""
    if vr == "SQ":
        return _clean_sequence(source, tag, where, context)
    if vr not in STRING_VRS:
        try:
            element = source[tag]
            return DataElement(tag, element.VR, copy.deepcopy(element.value))
        except Exception:
            context.note(where, "not readable, dropped")
            return _DROP
    try:
        values = _texts(source, tag, vr, context.encodings)
    except Exception:
        context.note(where, "not readable, dropped")
        return _DROP
    keyword = keyword_for_tag(tag)
    cleaned = [_without_controls(v, vr) for v in values]
    if cleaned != values:
        context.note(where, "control characters removed")
    if dictionary_VM(tag) == "1" and len(cleaned) > 1:
        context.note(where, f"{len(cleaned)} values where one is allowed, the first kept")
        cleaned = cleaned[:1]
    if vr == "PN":
        fixed = [_person_name(v) for v in cleaned]
        if fixed != cleaned:
            context.note(where, "more than 3 component groups or 5 components, the extra ones joined to the last")
        cleaned = fixed
    if vr == "DS":
        cleaned = [_decimal_string(v, where, context) for v in cleaned]
    if not all(_valid(vr, v, keyword) for v in cleaned if v):
        if kind in ("2", "2C"):
            context.note(where, f"not a valid {vr} value, left empty")
            return DataElement(tag, vr, None)
        context.note(where, f"not a valid {vr} value, dropped")
        return _DROP
    value: object = None if not cleaned else cleaned[0] if len(cleaned) == 1 else cleaned
    return DataElement(tag, vr, value if value != "" else None)


def _in_dictionary(tag: int) -> bool:
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def _clean_sequence(source: Dataset, tag: int, where: str, context: _Context) -> object:
    """A copy of the sequence whose items' standard attributes are cleaned like the root's (a value that does not
    parse is dropped); private attributes are not copied."""
    try:
        items = source[tag].value
    except Exception:
        context.note(where, "not readable, dropped")
        return _DROP
    copied = []
    for item in items:
        new = Dataset()
        for item_tag in item.keys():  # noqa: SIM118 - iterating a Dataset decodes its elements
            if item_tag.is_private or not _in_dictionary(item_tag):
                continue
            inner = f"{where} > {keyword_for_tag(item_tag) or item_tag}"
            value = _clean_value(item, item_tag, inner, context, "3")
            if value is not _DROP:
                new[item_tag] = value
        copied.append(new)
    return DataElement(tag, "SQ", DicomSequence(copied))


def _texts(ds: Dataset, tag: int, vr: str, encodings: list[str]) -> list[str]:
    """The element's values as text, decoded as pydicom would, without converting them to numbers or dates."""
    value = ds.get_item(tag).value
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if vr in CHARSET_VRS:
            text = decode_bytes(raw.rstrip(b"\x00 "), encodings, TEXT_VR_DELIMS)
        else:
            text = raw.decode(default_encoding)
        parts = [text] if vr in SINGLE_VALUE_VRS else text.split("\\")
    elif isinstance(value, MultiValue | list | tuple):
        parts = [str(v) for v in value]
    else:
        parts = [str(value)]
    if vr in CHARSET_VRS:
        return [p.rstrip("\x00 ") for p in parts]
    return [p.strip("\x00 ") for p in parts]


def _without_controls(text: str, vr: str) -> str:
    allowed = TEXT_CONTROLS.get(vr, "")
    return "".join(c for c in text if c in allowed or unicodedata.category(c) != "Cc")


def _person_name(text: str) -> str:
    """At most three component groups of at most five components, extra ones joined to the last (PS3.5 6.2.1)."""
    groups = text.split("=")
    if len(groups) > 3:
        groups = [*groups[:2], " ".join(groups[2:])]
    fixed = []
    for group in groups:
        parts = group.split("^")
        if len(parts) > 5:
            parts = [*parts[:4], " ".join(p for p in parts[4:] if p)]
        fixed.append("^".join(parts))
    return "=".join(fixed)


def _decimal_string(text: str, where: str, context: _Context) -> str:
    """A DS longer than 16 characters rewritten to fit, where it is a finite number."""
    if len(text) <= 16:
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    context.note(where, "longer than 16 characters, rewritten")
    return format_number_as_ds(number)


def _valid(vr: str, text: str, keyword: str) -> bool:
    """Whether `text` is one valid value of `vr` (pydicom's validators, then parsed), in the enumeration highdicom
    enforces for `keyword` if any."""
    validator = VALIDATORS.get(vr)
    if validator is not None and vr not in CHARSET_VRS and not validator(vr, text)[0]:
        return False
    if keyword in ENUMERATED and text not in ENUMERATED[keyword]:
        return False
    try:
        if vr == "DA":
            DA(text)
        elif vr == "TM":
            TM(text)
        elif vr == "DT":
            DT(text)
        elif vr == "DS":
            return math.isfinite(float(text))
        elif vr == "IS":
            return IS_RANGE[0] <= int(text) <= IS_RANGE[1]
    except (ValueError, OverflowError):
        return False
    return True


def _usable_slice_measures(clone: Dataset, source_datasets: Sequence[Dataset], context: _Context) -> None:
    """SliceThickness as highdicom copies it into the Pixel Measures (Type 1 there, > 0): where the source's is
    missing, not a number, not finite or <= 0, the slice step of the positions. SpacingBetweenSlices (Type 3 here)
    that is not a positive number is not copied."""
    if "SpacingBetweenSlices" in clone and _positive(clone, "SpacingBetweenSlices") is None:
        del clone.SpacingBetweenSlices
        context.note("SpacingBetweenSlices", "not a positive number, not copied")
    if _positive(clone, "SliceThickness") is not None:
        return
    step = _slice_step(source_datasets)
    what = "missing" if "SliceThickness" not in clone else "not a positive number"
    if step is None:
        raise SegEncodingError(f"SliceThickness is {what} and the slice positions give no slice spacing to use instead")
    clone.SliceThickness = format_number_as_ds(step)
    context.note("SliceThickness", f"{what}, the slice spacing of the positions written instead")


def _positive(ds: Dataset, keyword: str) -> float | None:
    try:
        values = _texts(ds, tag_for_keyword(keyword), "DS", [default_encoding])
        number = float(values[0]) if len(values) == 1 and re.fullmatch(r"[-+0-9.eE]+", values[0]) else math.nan
    except Exception:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _slice_step(source_datasets: Sequence[Dataset]) -> float | None:
    """The median distance between neighbouring slices along the slice normal, None if there is none."""
    if len(source_datasets) < 2:
        return None
    try:
        normal = slice_normal([float(v) for v in source_datasets[0].ImageOrientationPatient])
        along = np.asarray([ds.ImagePositionPatient for ds in source_datasets], float) @ normal
    except Exception:
        return None
    step = float(np.median(np.abs(np.diff(along))))
    return step if math.isfinite(step) and step > 0 else None
