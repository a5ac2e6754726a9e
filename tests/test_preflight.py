"""Before the first case, `aimi run` refuses what would fail every case: weights that do not load (the file is
named) and an output folder that takes no file - exit 2, one line, no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from aimi.cli import main
from aimi.errors import EXIT_USAGE
from aimi.models import load_model
from aimi.weights import model_folder

KIDNEY = load_model("bamf_nnunet_ct_kidney")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "zero-byte checkpoint": ("fold_0/checkpoint_final.pth", lambda p: p.write_bytes(b"")),
    "truncated checkpoint": ("fold_0/checkpoint_final.pth", _truncate),
    "garbage plans.json": ("plans.json", lambda p: p.write_text("{not json")),
    "garbage dataset.json": ("dataset.json", lambda p: p.write_bytes(b"\x00\x01")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_weights_that_do_not_load_stop_the_run_naming_the_file(damage: str, kidney_weights: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(kidney_weights, weights)
    name, spoil = DAMAGE[damage]
    broken = model_folder(weights, KIDNEY.manifest, KIDNEY.manifest.weights[0]) / name
    spoil(broken)
    (tmp_path / "in").mkdir()
    status = main(["run", KIDNEY.name, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                   "--weights", str(weights)])
    error = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert f"{broken}: not a" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_stops_the_run_before_any_case(kidney_weights: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").write_text("a file")
    status = main(["run", KIDNEY.name, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                   "--weights", str(kidney_weights)])
    assert status == EXIT_USAGE
    assert "output folder" in capsys.readouterr().err and (tmp_path / "out").read_text() == "a file"


def test_aimi_models_json_shows_where_each_weights_entry_came_from(kidney_weights: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    only_kidney = tmp_path / "weights"  # the session's shared root may hold other test models by now
    only_kidney.mkdir()
    (only_kidney / KIDNEY.name).symlink_to(kidney_weights / KIDNEY.name)
    assert main(["models", "--json", "--weights", str(only_kidney)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    kidney = rows[KIDNEY.name]
    assert kidney["weights"] == "missing or unverified"  # a test model is not the manifest's archive
    assert kidney["provenance"]["kidney"] == {"file": "aimi-testmodel", "url": "", "record": "", "md5": "",
                                              "sha256": "", "converter": ""}
    assert rows["bamf_nnunet_mr_breast"]["provenance"]["tumor"]["record"] == "11998632"  # not fetched: the manifest's
