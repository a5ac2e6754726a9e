"""The reusable chain modules, by the names workflows use."""

from __future__ import annotations

from aimi.core.module import Module


def registry() -> dict[str, type[Module]]:
    """Module name -> class; imported lazily so that `aimi models` does not pay for torch."""
    from aimi.brain.atlas_registration import AtlasRegistration
    from aimi.brain.atlas_resampler import AtlasResampler
    from aimi.brain.bias_field_corrector import BiasFieldCorrector
    from aimi.brain.brain_extractor import BrainExtractor
    from aimi.brain.labels_to_series import LabelsToSeries
    from aimi.brain.review_space import ReviewSpace
    from aimi.brain.rigid_registration import RigidRegistration
    from aimi.inference.nnunet_runner import NNUnetRunner
    from aimi.io.data_organizer import DataOrganizer
    from aimi.io.dicom_importer import DicomImporter
    from aimi.io.dseg_converter import DsegConverter
    from aimi.io.nifti_converter import NiftiConverter
    from aimi.io.volume_report import VolumeReport
    from aimi.postprocess.component_size_filter import ComponentSizeFilter
    from aimi.postprocess.fuse_label_maps import FuseLabelMaps
    from aimi.postprocess.keep_largest_components import KeepLargestComponents
    from aimi.postprocess.mask_to_region import MaskToRegion
    from aimi.postprocess.remap_labels import RemapLabels

    modules: list[type[Module]] = [
        DicomImporter,
        NiftiConverter,
        BiasFieldCorrector,
        RigidRegistration,
        BrainExtractor,
        AtlasRegistration,
        AtlasResampler,
        NNUnetRunner,
        RemapLabels,
        LabelsToSeries,
        ReviewSpace,
        KeepLargestComponents,
        MaskToRegion,
        ComponentSizeFilter,
        FuseLabelMaps,
        DsegConverter,
        VolumeReport,
        DataOrganizer,
    ]
    return {module.__name__: module for module in modules}
