"""VolumeReport: each SEG's segment volumes (mL) and connected components, for the run report and, when asked, as a
DICOM SR (TID 1500 Measurement Report, highdicom) that references the SEG's segments, so viewers show the volumes.

Measured on the SEG itself: its frames decoded by highdicom onto the source slices, voxel volume from the series'
geometry; components with face connectivity. The SR's evidence is the SEG and its source slices (the segments'
references name them); one volume measurement per non-empty segment (SCT 118565006 Volume, UCUM mL), with the
segment's property type and category as finding type and category. Inputs: the SEGs and their series. Outputs:
measurements; reports (SR datasets by role, none unless `write_sr`), which DataOrganizer writes beside the SEGs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from scipy import ndimage

from aimi.core.case import SERIES, Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import MEASURED, REPORTS, SEGS, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND

#: SCT 363679005 "Imaging": the procedure a volume report is about, for any modality.
IMAGING = hd.sr.CodedConcept("363679005", "SCT", "Imaging")
MILLILITRE = hd.sr.CodedConcept("mL", "UCUM", "milliliter")


@dataclass(frozen=True)
class Settings:
    write_sr: bool = False  # a TID 1500 SR per SEG; --set VolumeReport.write_sr=true
    series_number: int = 302  # the SEG's series is 300 (the authors' configurations)


class VolumeReport(Module):
    inputs = ports(
        segs=Port(SEGS, "the SEGs whose segments are measured, by role", "segs"),
        series=Port(SERIES_KIND, "the source series: slice order and voxel volume", SERIES),
    )
    outputs = ports(measurements=MEASURED,
                    reports=Port(REPORTS, "one SR per SEG with its segment volumes (only with write_sr)", "reports"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        measured: dict[str, Any] = {}
        reports: dict[str, Dataset] = {}
        for role, seg in self.read(case, "segs").items():
            series = series_by_role[role]
            voxel_ml = float(np.prod(series.geometry.spacing)) / 1000.0
            volumes = segment_volumes(seg, series.sop_instance_uids, voxel_ml)
            measured[role] = {item.SegmentLabel: volumes[int(item.SegmentNumber)] for item in seg.SegmentSequence}
            if self.settings.write_sr:
                reports[role] = self._report(seg, volumes, series.headers)
        self.write(case, "measurements", {self.name: measured})
        self.write(case, "reports", reports)

    def _report(self, seg: Dataset, volumes: dict[int, dict[str, float]], sources: Sequence[Dataset]) -> Dataset:
        observer = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=hd.UID(), name=f"aimi {self.context.model_name}"))
        groups = [hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"segment {item.SegmentNumber}"),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, int(item.SegmentNumber)),
            finding_type=_code(item.SegmentedPropertyTypeCodeSequence[0]),
            finding_category=_code(item.SegmentedPropertyCategoryCodeSequence[0]),
            measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=volumes[int(item.SegmentNumber)]["ml"],
                                            unit=MILLILITRE)],
        ) for item in seg.SegmentSequence if volumes[int(item.SegmentNumber)]["voxels"]]
        content = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=observer),
            procedure_reported=IMAGING, imaging_measurements=groups)
        return hd.sr.Comprehensive3DSR(
            evidence=[seg, *sources], content=content, series_instance_uid=hd.UID(),
            series_number=self.settings.series_number, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=str(seg.get("Manufacturer", "")) or None,
            series_description=f"{seg.get('SeriesDescription', 'AIMI')} volumes"[:64])


def _code(item: Dataset) -> hd.sr.CodedConcept:
    """The code alone (a property type item may nest its modifier, which an SR content item does not take)."""
    return hd.sr.CodedConcept(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def segment_volumes(seg: Dataset, source_uids: list[str], voxel_ml: float) -> dict[int, dict[str, float]]:
    """Per segment number: its voxels, volume (mL) and connected components (face connectivity), decoded from the
    SEG's frames onto the source slices (in `source_uids` order; slices without a frame are empty)."""
    decoded = seg if isinstance(seg, hd.seg.Segmentation) else hd.seg.Segmentation.from_dataset(seg)
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    pixels = decoded.get_pixels_by_source_instance(source_uids, segment_numbers=numbers,
                                                   assert_missing_frames_are_empty=True, dtype=np.uint8)
    volumes = {}
    for index, number in enumerate(numbers):
        mask = pixels[..., index] > 0
        voxels = int(mask.sum())
        volumes[number] = {"voxels": voxels, "ml": round(voxels * voxel_ml, 4),
                           "components": int(ndimage.label(mask)[1]) if voxels else 0}
    return volumes
