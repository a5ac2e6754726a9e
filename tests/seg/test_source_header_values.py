"""Source header values real archives hold, which highdicom would copy into an invalid SEG or refuse after inference:
the SEG is built, passes dciodvfy, keeps its frames, and each change is reported by attribute, never by value."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from aimi.core.case import Case, DicomSeries
from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.dicom.geometry import series_geometry, sort_by_position
from aimi.errors import CaseError
from aimi.io.dseg_converter import DsegConverter
from aimi.models import load_model
from aimi.registry import registry
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.source_header import SegEncodingError
from aimi.seg.writer import SegHeader, build_seg, write_dataset_atomically
from aimi_testkit.seg_reader import read_seg_labelmap
from aimi_testkit.synthetic import Ellipsoid, GridSpec, StudyInfo, sample_phantom, write_series
from tests.support.validators import dciodvfy_errors

GRID = GridSpec.axial(rows=24, columns=20, slices=8, pixel_spacing=(1.5, 1.5), slice_step=2.5)
SHAPES = [Ellipsoid((2.0, -3.0, 1.0), (9.0, 7.0, 6.0), 150.0, 1),
          Ellipsoid((-6.0, 5.0, -2.0), (4.0, 4.0, 4.0), 60.0, 2)]
TABLE = [
    {"label": 1, "name": "Kidney",
     "category": {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"},
     "type": {"scheme": "SCT", "value": "64033007", "meaning": "Kidney"}},
    {"label": 2, "name": "Tumor",
     "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
     "type": {"scheme": "SCT", "value": "4147007", "meaning": "Mass"}},
]
HEADER = SegHeader(series_description="AIMI Kidney Segmentation", series_number=900, body_part_examined="KIDNEY",
                   algorithm_name="BAMF-Kidney-CT", algorithm_version="1.0.0", software_versions="aimi test")
JAPANESE = (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
            "Yamada^Tarou=山田^太郎=やまだ^たろう")
DELETE = None


@dataclass(frozen=True)
class Probe:
    """Raw values planted in every slice (None deletes), what the SEG must then hold, and the note it gives."""

    plant: dict[str, bytes | None]
    note: str = ""  # a note must start with this ("" - no note at all)
    secret: bytes = b""  # the planted value that must appear neither in the SEG nor in any note
    expect: dict[str, object] = field(default_factory=dict)  # keyword -> value in the SEG (None: absent)
    charset: str | None = None  # the SEG's SpecificCharacterSet


PROBES = {
    # values that made an invalid SEG
    "name-control-characters": Probe({"PatientName": b"DOE\x01^JO\x1bHN\r\n"},
                                     "PatientName: control characters removed", b"DOE\x01^JO\x1bHN",
                                     {"PatientName": "DOE^JOHN"}),
    "id-bell-and-backslash": Probe({"PatientID": b"ID\x07X\\SECOND-ID"},
                                   "PatientID: control characters removed; 2 values where one is allowed",
                                   b"SECOND-ID", {"PatientID": "IDX"}),
    "accession-backslash-control": Probe({"AccessionNumber": b"ACC\\B\x01ZZQ"},
                                         "AccessionNumber: control characters removed; 2 values", b"BZZQ",
                                         {"AccessionNumber": "ACC"}),
    "referring-two-names": Probe({"ReferringPhysicianName": b"DR^A\\QUACK^B"},
                                 "ReferringPhysicianName: 2 values where one is allowed, the first kept", b"QUACK",
                                 {"ReferringPhysicianName": "DR^A"}),
    "age-with-space": Probe({"PatientAge": b"45 Y"}, "PatientAge: not a valid AS value, dropped", b"45 Y",
                            {"PatientAge": None}),
    "clinical-trial-sponsor-only": Probe({"ClinicalTrialSponsorName": b"ACME PHARMA TRIALS"},
                                         "Clinical Trial Subject module: incomplete", b"ACME PHARMA",
                                         {"ClinicalTrialSponsorName": None}),
    "name-six-components": Probe({"PatientName": b"A^B^C^D^E^F"}, "PatientName: more than 3 component groups or 5",
                                 b"E^F", {"PatientName": "A^B^C^D^E F"}),
    "weight-inf": Probe({"PatientWeight": b"inf "}, "PatientWeight: not a valid DS value, dropped", b"",
                        {"PatientWeight": None}),
    "size-text": Probe({"PatientSize": b"TALLISH "}, "PatientSize: not a valid DS value, dropped", b"TALLISH",
                       {"PatientSize": None}),
    "issuer-control-character": Probe({"IssuerOfPatientID": b"HOSP\x02ITAL"},
                                      "IssuerOfPatientID: control characters removed", b"HOSP\x02",
                                      {"IssuerOfPatientID": "HOSPITAL"}),
    "comments-nul": Probe({"PatientComments": b"first\x00second"}, "PatientComments: control characters removed",
                          b"first\x00", {"PatientComments": "firstsecond"}),
    "birth-time-99": Probe({"PatientBirthTime": b"99:99:99"}, "PatientBirthTime: not a valid TM value, dropped",
                           b"99:99:99", {"PatientBirthTime": None}),
    "study-id-backslash": Probe({"StudyID": b"12\\SECRET"}, "StudyID: 2 values where one is allowed", b"SECRET",
                                {"StudyID": "12"}),
    "slice-thickness-zero": Probe({"SliceThickness": b"0 "}, "SliceThickness: not a positive number, the slice"),
    # values highdicom refused (the case failed after inference)
    "study-date-2020-13-45": Probe({"StudyDate": b"2020-13-45"}, "StudyDate: not a valid DA value, left empty",
                                   b"2020-13-45", {"StudyDate": ""}),
    "study-time-25-99": Probe({"StudyTime": b"25:99 "}, "StudyTime: not a valid TM value, left empty", b"25:99",
                              {"StudyTime": ""}),
    "birth-date-unknown": Probe({"PatientBirthDate": b"unknown "}, "PatientBirthDate: not a valid DA value, left empty",
                                b"unknown", {"PatientBirthDate": ""}),
    "sex-male": Probe({"PatientSex": b"Male"}, "PatientSex: not a valid CS value, left empty", b"Male",
                      {"PatientSex": ""}),
    "study-time-acr-nema": Probe({"StudyTime": b"10:30:00"}, "StudyTime: not a valid TM value, left empty",
                                 b"10:30:00", {"StudyTime": ""}),
    "charset-unknown": Probe({"SpecificCharacterSet": b"ISO_IR 999", "PatientName": "Müller^Hans".encode("latin-1")},
                             "SpecificCharacterSet: not a character set pydicom knows",
                             expect={"PatientName": "Müller^Hans"}, charset="ISO_IR 192"),
    "charset-iso-2022-ir-87": Probe({"SpecificCharacterSet": b"\\ISO 2022 IR 87", "PatientName": JAPANESE[0]},
                                    expect={"PatientName": JAPANESE[1]}, charset="ISO_IR 192"),
    "name-backslash": Probe({"PatientName": b"DOE^JOHN\\ROE^JANE"}, "PatientName: 2 values where one is allowed",
                            b"ROE^JANE", {"PatientName": "DOE^JOHN"}),
    "slice-thickness-missing": Probe({"SliceThickness": DELETE}, "SliceThickness: missing, the slice spacing"),
    "slice-thickness-abc": Probe({"SliceThickness": b"abc "}, "SliceThickness: not a positive number, the slice"),
    "slice-thickness-nan": Probe({"SliceThickness": b"nan "}, "SliceThickness: not a positive number, the slice"),
    # non-ASCII that already gave clean SEGs: kept, written as UTF-8
    "utf8-declared": Probe({"SpecificCharacterSet": b"ISO_IR 192", "PatientName": "Müller^Jürgen".encode(),
                            "StudyDescription": "Nieren Übersicht / 腎臓".encode()},
                           expect={"PatientName": "Müller^Jürgen", "StudyDescription": "Nieren Übersicht / 腎臓"},
                           charset="ISO_IR 192"),
    "latin1-declared": Probe({"StudyDescription": "Nieren Übersicht".encode("latin-1")},
                             expect={"StudyDescription": "Nieren Übersicht"}, charset="ISO_IR 192"),
    "latin1-undeclared": Probe({"SpecificCharacterSet": DELETE, "StudyDescription": "Hôpital Übersicht".encode(
        "latin-1")}, expect={"StudyDescription": "Hôpital Übersicht"}, charset="ISO_IR 192"),
    "ascii-only": Probe({}, charset=None),
    # a whole clinical-trial module is copied, its missing Type 2 attributes empty
    "clinical-trial-complete": Probe({"ClinicalTrialSponsorName": b"ACME", "ClinicalTrialProtocolID": b"P-1 ",
                                      "ClinicalTrialSubjectID": b"S-7 "}, "ClinicalTrialProtocolName: missing",
                                     expect={"ClinicalTrialSponsorName": "ACME", "ClinicalTrialSubjectID": "S-7",
                                             "ClinicalTrialSiteID": ""}),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Dataset], np.ndarray]:
    """Headers of one synthetic CT series (source frame order) and its label map."""
    volume, labels = sample_phantom(GRID, SHAPES, -100.0)
    files = write_series(volume, GRID, tmp_path_factory.mktemp("ct"), study=StudyInfo.new("AIMI-7", patient_name="X^Y"))
    headers = sort_by_position([pydicom.dcmread(path, stop_before_pixels=True) for path in files])
    return headers, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def segments() -> list[SegmentSpec]:
    return parse_segments(copy.deepcopy(TABLE), "test")


def planted(headers: list[Dataset], plant: dict[str, bytes | None]) -> list[Dataset]:
    """Copies of `headers` holding `plant` as raw bytes, as a file written by a broken archive would."""
    result = copy.deepcopy(headers)
    for ds in result:
        for keyword, raw in plant.items():
            tag = Tag(tag_for_keyword(keyword))
            if raw is None:
                ds.pop(tag, None)
            else:
                ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, False, True)
    return result


def raw_elements(ds: Dataset) -> list[object]:
    """The source's patient and study elements as stored: raw bytes until something decodes them."""
    keywords = ("PatientName", "PatientID", "PatientSex", "StudyDate", "StudyTime", "StudyDescription",
                "SpecificCharacterSet", "SliceThickness", "AccessionNumber")
    return [ds.get_item(keyword) for keyword in keywords if keyword in ds]


def shown(value: object) -> object:
    return None if value is None else str(value)


@pytest.mark.parametrize("name", list(PROBES))
def test_bad_source_value_gives_a_valid_seg_and_a_note_without_the_value(
        name: str, source: tuple, segments: list[SegmentSpec], tmp_path: Path) -> None:
    probe = PROBES[name]
    headers, labels = source
    datasets = planted(headers, probe.plant)
    before = raw_elements(datasets[0])
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg = build_seg(labels, datasets, segments, HEADER, notes=notes)
    path = tmp_path / "probe.seg.dcm"
    write_dataset_atomically(seg, path)

    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(read_seg_labelmap(path, [str(ds.SOPInstanceUID) for ds in datasets]), labels)
    if probe.note:
        assert any(n.startswith(probe.note) for n in notes), notes
    else:
        assert notes == []
    written = pydicom.dcmread(path)
    assert written.get("SpecificCharacterSet") == probe.charset
    for keyword, value in probe.expect.items():
        assert shown(written.get(keyword)) == value, keyword
    if probe.secret:
        text = probe.secret.decode("latin-1")
        assert probe.secret not in path.read_bytes()
        assert not any(text in n for n in notes)
        assert not any(text in str(w.message) for w in caught)
    assert raw_elements(datasets[0]) == before  # the source datasets other steps use are unchanged


def test_slice_thickness_fallback_is_the_slice_step(source: tuple, segments: list[SegmentSpec]) -> None:
    headers, labels = source
    seg = build_seg(labels, planted(headers, {"SliceThickness": b"0 "}), segments, HEADER)
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == pytest.approx(GRID.slice_step)


def test_a_library_refusal_names_type_and_attribute_not_the_value(
        source: tuple, segments: list[SegmentSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    headers, labels = source

    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("Unable to convert 'SECRET^NAME' to 'DA' object (StudyDate)")

    monkeypatch.setattr("aimi.seg.writer.hd.seg.Segmentation", refuse)
    with pytest.raises(SegEncodingError) as raised:
        build_seg(labels, headers, segments, HEADER)
    assert "SECRET" not in str(raised.value)
    assert "ValueError" in str(raised.value) and "StudyDate" in str(raised.value)


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> DsegConverter:
    kidney = load_model("bamf_nnunet_ct_kidney")
    chain = load_workflow(kidney.workflow_path("default"), registry())
    settings = next(step.settings for step in chain.steps if step.label == "DsegConverter")
    context = RunContext(kidney.name, kidney.path, kidney.manifest, tmp_path_factory.mktemp("w"),
                         tmp_path_factory.mktemp("out"), RunOptions())
    return DsegConverter(settings, context)


def case_of(datasets: list[Dataset], labels: np.ndarray) -> Case:
    geometry = series_geometry(datasets)
    series = DicomSeries(str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID), "CT", "",
                         (), tuple(datasets), geometry)
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(geometry.reference_image())
    return Case(series.series_uid, {"ct": series}, {"main": image})


def test_converter_reports_the_changes_as_case_warnings(converter: DsegConverter, source: tuple) -> None:
    headers, labels = source
    datasets = planted(headers, {"PatientSex": b"Male", "StudyTime": b"10:30:00"})
    case = case_of(datasets, labels)
    converter(case)
    assert "ct" in case.artifacts["segs"]
    uid = datasets[0].SeriesInstanceUID
    assert case.artifacts["warnings"] == [f"series {uid}: SEG header: PatientSex: not a valid CS value, left empty",
                                          f"series {uid}: SEG header: StudyTime: not a valid TM value, left empty"]


def test_converter_failure_quotes_no_header_value(converter: DsegConverter, source: tuple,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    headers, labels = source

    def refuse(*args: object, **kwargs: object) -> None:
        raise TypeError("Invalid type for a person name: 'SECRET^NAME'")

    monkeypatch.setattr("aimi.seg.writer.hd.seg.Segmentation", refuse)
    with pytest.raises(CaseError) as raised:
        converter(case_of(headers, labels))
    assert "SECRET" not in str(raised.value) and "TypeError" in str(raised.value)
