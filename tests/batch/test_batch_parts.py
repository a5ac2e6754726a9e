"""The batch's parts on their own: the ledger's state machine, manifests, the bounded prefetcher, and idc-index
usage up to the network boundary (a stub client stands in for the network; the calls are checked against the
real `idc_index.IDCClient` signatures)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pandas as pd
import pytest
from idc_index import IDCClient

from aimi.batch.ledger import Ledger
from aimi.batch.manifest import query_manifest, read_manifest
from aimi.batch.prefetch import Prefetcher
from aimi.batch.sources import MEBIBYTE, IdcSource, SourceError
from aimi.errors import ConfigError

UIDS = ["1.2.3.1", "1.2.3.2", "1.2.3.3"]


def test_ledger_state_survives_reopening_and_a_killed_run_is_requeued_not_failed(tmp_path: Path):
    (tmp_path / "1.2.3.1").mkdir()
    (tmp_path / "1.2.3.1" / "m.seg.dcm").write_bytes(b"seg")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.add(UIDS)
        ledger.start("1.2.3.1")
        ledger.finish("1.2.3.1", "done", outputs=["1.2.3.1/m.seg.dcm"])
        ledger.start("1.2.3.2")  # the process dies here
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.add(UIDS)
        assert ledger.recover(tmp_path) == ["1.2.3.2"]
        entries = {e.uid: e for e in ledger.entries()}
        assert entries["1.2.3.2"].state == "pending" and entries["1.2.3.2"].interruptions == 1
        assert entries["1.2.3.2"].attempts == 0
        assert ledger.todo(UIDS, retries=0) == ["1.2.3.2", "1.2.3.3"]


def test_a_done_series_whose_seg_is_gone_is_requeued(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.add(UIDS[:1])
        ledger.start(UIDS[0])
        ledger.finish(UIDS[0], "done", outputs=[f"{UIDS[0]}/m.seg.dcm"])
        assert ledger.recover(tmp_path) == [UIDS[0]]
        assert ledger.todo(UIDS, retries=0) == [UIDS[0]]


def test_failed_series_are_retried_up_to_retries(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.add(UIDS[:1])
        for _ in range(2):
            assert ledger.todo(UIDS, retries=1) == [UIDS[0]]
            ledger.start(UIDS[0])
            ledger.finish(UIDS[0], "failed", module="NiftiConverter", reason="dcm2niix failed")
        assert ledger.todo(UIDS, retries=1) == []
        [entry] = ledger.entries()
        assert (entry.state, entry.attempts, entry.module) == ("failed", 2, "NiftiConverter")


def test_manifest_reads_txt_csv_and_tsv_and_names_the_bad_line(tmp_path: Path):
    txt = tmp_path / "m.txt"
    txt.write_text("# NLST CT\n1.2.3.1\n\n1.2.3.2\n1.2.3.1\n")
    assert read_manifest(txt) == ["1.2.3.1", "1.2.3.2"]
    csv = tmp_path / "m.csv"
    csv.write_text('collection_id,"SeriesInstanceUID"\nnlst,"1.2.3.2"\nnlst,1.2.3.1\n')
    assert read_manifest(csv) == ["1.2.3.2", "1.2.3.1"]
    tsv = tmp_path / "m.tsv"
    tsv.write_text("1.2.3.3\tCT\n1.2.3.1\tCT\n")
    assert read_manifest(tsv) == ["1.2.3.3", "1.2.3.1"]
    bad = tmp_path / "bad.txt"
    bad.write_text("1.2.3.1\nPatient^Name\n")
    with pytest.raises(ConfigError, match=r"bad.txt, line 2"):
        read_manifest(bad)


class FakeSource:
    """Series of known sizes; records the bytes fetched into scratch at the same time."""

    def __init__(self, sizes: dict[str, int], missing: str = "") -> None:
        self.sizes, self.missing = sizes, missing
        self.fetched: list[str] = []

    def size_bytes(self, uid: str) -> int:
        if uid == self.missing:
            raise SourceError(f"series {uid} is not in the source folder")
        return self.sizes[uid]

    def fetch(self, uid: str, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "x.dcm").write_bytes(b"x" * self.sizes[uid])
        self.fetched.append(uid)


def scratch_bytes(scratch: Path) -> int:
    return sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file())


def test_prefetcher_fetches_ahead_within_the_scratch_budget_in_manifest_order(tmp_path: Path):
    sizes = {f"1.{i}": 400 for i in range(6)}
    source = FakeSource(sizes, missing="1.3")
    seen, peak = [], 0
    with Prefetcher(source, list(sizes), tmp_path / "scratch", max_bytes=1000, ahead=1) as prefetcher:
        for item in prefetcher:
            time.sleep(0.05)  # the next series downloads meanwhile
            peak = max(peak, scratch_bytes(tmp_path / "scratch"))
            seen.append((item.uid, item.error.split(":")[0]))
            prefetcher.release(item)
    assert seen == [("1.0", ""), ("1.1", ""), ("1.2", ""), ("1.3", "series 1.3 is not in the source folder"),
                    ("1.4", ""), ("1.5", "")]
    assert peak == 800  # the series in work and the one fetched ahead, never a third
    assert not list((tmp_path / "scratch").iterdir())


def test_prefetcher_fetches_an_oversized_series_alone_rather_than_stall(tmp_path: Path):
    source = FakeSource({"1.1": 50, "1.2": 5000})
    with Prefetcher(source, ["1.1", "1.2"], tmp_path / "s", max_bytes=1000) as prefetcher:
        items = []
        for item in prefetcher:
            items.append(item.uid)
            if item.uid == "1.1":
                time.sleep(0.1)
                assert source.fetched == ["1.1"]  # 1.2 waits until 1.1 leaves scratch
            prefetcher.release(item)
    assert items == ["1.1", "1.2"]


class StubClient:
    """Stands in for IDCClient at the network boundary: records calls, 'downloads' one file."""

    def __init__(self) -> None:
        self.downloads: list[dict] = []

    def get_series_size(self, uid: str) -> float:
        if uid != "1.2.3.1":
            raise ValueError("not found")
        return 2.5

    def download_dicom_series(self, **kwargs: object) -> None:
        self.downloads.append(kwargs)
        (Path(str(kwargs["downloadDir"])) / "a.dcm").write_bytes(b"DICM")

    def sql_query(self, sql: str) -> pd.DataFrame:
        return pd.DataFrame({"SeriesInstanceUID": ["1.2.3.1", "1.2.3.2", "1.2.3.1"], "Modality": ["CT"] * 3})


def test_idc_download_is_one_flat_quiet_s5cmd_download_per_series(tmp_path: Path):
    client = StubClient()
    source = IdcSource("gcs", client=client)
    assert source.size_bytes("1.2.3.1") == int(2.5 * MEBIBYTE)
    source.fetch("1.2.3.1", tmp_path / "1.2.3.1")
    [call] = client.downloads
    inspect.signature(IDCClient.download_dicom_series).bind(object(), **call)  # the real API accepts these
    assert call == {"seriesInstanceUID": "1.2.3.1", "downloadDir": str(tmp_path / "1.2.3.1"), "dirTemplate": None,
                    "quiet": True, "show_progress_bar": False, "use_s5cmd_sync": False,
                    "source_bucket_location": "gcs"}
    with pytest.raises(SourceError, match="not in the IDC index"):
        source.size_bytes("9.9")


def test_idc_query_becomes_a_saved_deduplicated_manifest(tmp_path: Path):
    assert {"sql_query", "get_series_size"} <= set(dir(IDCClient))
    uids = query_manifest(StubClient(), "SELECT SeriesInstanceUID, Modality FROM index", tmp_path / "manifest.txt")
    assert uids == ["1.2.3.1", "1.2.3.2"]
    assert read_manifest(tmp_path / "manifest.txt") == uids
