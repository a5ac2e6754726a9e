"""The reusable chain modules, by the names workflows use."""

from __future__ import annotations

from aimi.module import Module


def registry() -> dict[str, type[Module]]:
    """Module name -> class; imported lazily so that `aimi models` does not pay for torch."""
    from aimi.modules.atlas_registration import AtlasRegistration
    from aimi.modules.atlas_resampler import AtlasResampler
    from aimi.modules.bias_field_corrector import BiasFieldCorrector
    from aimi.modules.brain_extractor import BrainExtractor
    from aimi.modules.component_size_filter import ComponentSizeFilter
    from aimi.modules.data_organizer import DataOrganizer
    from aimi.modules.dicom_importer import DicomImporter
    from aimi.modules.dseg_converter import DsegConverter
    from aimi.modules.fuse_label_maps import FuseLabelMaps
    from aimi.modules.keep_largest_components import KeepLargestComponents
    from aimi.modules.labels_to_series import LabelsToSeries
    from aimi.modules.mask_to_region import MaskToRegion
    from aimi.modules.nifti_converter import NiftiConverter
    from aimi.modules.nnunet_runner import NNUnetRunner
    from aimi.modules.remap_labels import RemapLabels
    from aimi.modules.rigid_registration import RigidRegistration

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
        KeepLargestComponents,
        MaskToRegion,
        ComponentSizeFilter,
        FuseLabelMaps,
        DsegConverter,
        DataOrganizer,
    ]
    return {module.__name__: module for module in modules}
