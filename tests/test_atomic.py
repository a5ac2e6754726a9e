"""Files appear whole or not at all, whichever writer fills them."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimi.atomic import stage, temporary_for, write_atomically


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


def test_staged_file_is_hidden_and_keeps_the_extension_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "model.labels.nii.gz"
    assert temporary_for(target).name.startswith(".model.labels.nii.gz.")
    assert temporary_for(target).name.endswith(".partial")
    assert temporary_for(target, keep_extension=True).name.endswith(".partial.nii.gz")  # writers that go by it
    staged = stage(target, lambda path: path.write_bytes(b"x"), keep_extension=True)
    assert staged.parent == tmp_path and staged.read_bytes() == b"x" and not target.exists()
