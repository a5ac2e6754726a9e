"""Files appear whole or not at all, whichever writer fills them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aimi.atomic import is_temporary, prepare_output_folder, remove_stale, stage, temporary_for, write_atomically
from aimi.errors import ConfigError
from tests.support.oslimits import file_size_limit


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "run-report.json"
    target.write_text("old")

    def half_then_fail(path: Path) -> None:
        path.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-report.json"]


def test_new_file_replaces_the_old_one_and_folders_are_made(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.json"
    write_atomically(target, lambda path: path.write_text("new"))
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_temporary_is_hidden_and_never_ends_in_an_output_suffix(tmp_path: Path) -> None:
    """A killed run's leftover must not look like a result to any reader of the folder (*.seg.dcm, *.nrrd)."""
    target = tmp_path / "model.labels.nii.gz"
    staged = stage(target, lambda path: path.write_bytes(b"x"))
    assert staged.name.startswith(".model.labels.nii.gz.") and staged.name.endswith(".partial")
    assert is_temporary(staged) and not is_temporary(target)
    assert staged.parent == tmp_path and staged.read_bytes() == b"x" and not target.exists()


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    gone = tmp_path / "case" / f".model.seg.dcm.{_dead_pid()}.partial"
    gone.parent.mkdir()
    gone.write_bytes(b"half a SEG")
    nifti = tmp_path / "case" / f".model.labels.nii.{_dead_pid()}.partial.nii"
    nifti.write_bytes(b"half a NIfTI")
    live = temporary_for(tmp_path / "case" / "model.qc.png")
    live.write_bytes(b"being written")
    assert sorted(remove_stale(tmp_path)) == sorted([gone, nifti])
    assert live.exists() and not gone.exists()


def test_an_output_folder_that_is_a_file_or_takes_no_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    afile = tmp_path / "out"
    afile.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"output folder .*out is a file"):
        prepare_output_folder(afile)
    full = tmp_path / "full"
    with pytest.raises(ConfigError, match=r"output folder .*full is not writable: File too large"), \
            file_size_limit(1024):
        prepare_output_folder(full)
    assert [p.name for p in full.iterdir()] == []  # the probe left nothing


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
