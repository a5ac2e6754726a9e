"""The test kit's test-model specs: one per manifest weights entry, each checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimi.models import available_models, load_model
from aimi_testkit.specs import SpecError, load_specs
from aimi_testkit.testmodel_cli import spec_for

SPEC = '''[test_model.organ]
channels = { "0" = "CT" }
labels = { background = 0, organ = 1 }
intensities = { "0" = [-100.0], "1" = [150.0] }
'''


def test_every_weights_entry_of_every_model_has_a_spec_with_the_real_dataset_name():
    specs = load_specs()
    assert sorted(specs) == available_models()
    for name in available_models():
        manifest = load_model(name).manifest
        assert sorted(specs[name]) == sorted(entry.id for entry in manifest.weights)
        for entry in manifest.weights:
            spec = spec_for(load_model(name), entry.id)
            assert spec.dataset_name.startswith("Dataset") and spec.labels["background"] == 0


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("background = 0", "background = 1", r"test_model\.organ\.labels: needs background = 0"),
    ('"1" = [150.0]', '"1" = [150.0, 2.0]', r"test_model\.organ\.intensities\.1: must be a list of 1 number"),
    ('"0" = "CT"', '"1" = "CT"', r"test_model\.organ\.channels: keys must be"),
    ('"1" = [150.0]', '"2" = [150.0]', r"test_model\.organ\.intensities: one entry per label value \[0, 1\]"),
    ('labels =', 'colour = 1\nlabels =', r"test_model\.organ: a table with exactly the keys channels, labels"),
])
def test_a_malformed_spec_names_the_file_and_the_key_path(tmp_path: Path, old: str, new: str, expected: str):
    path = tmp_path / "testmodels.toml"
    assert old in SPEC
    path.write_text(SPEC.replace(old, new, 1))
    with pytest.raises(SpecError, match=expected) as error:
        load_specs(path)
    assert str(error.value).startswith(str(path))
