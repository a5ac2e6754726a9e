"""What IDC published for a series, read from idc-index's bundled index (offline).

In: the bundled index (`BundledIndex`, or an IDCClient: both answer `sql_query` over the table `index`) and a
SeriesInstanceUID - an image series, or one of the SEG series IDC published as analysis
result `bamf_aimi_annotations`. Out: a `Target`: the model, the rule that chose it, the study, and the published AI
SEG series that may segment the series, each with its size and bucket URL (what a download fetches).

The bundled `index` table ties a SEG to its study, not to the series it segments (that link is seg_index's
segmented_SeriesInstanceUID, a separate download). So the published SEGs of an image series are taken as the AI SEGs
of its study whose model reads the series' modality; which of them references the series is read from the
downloaded SEG's ReferencedSeriesSequence (aimi.reproduce.downloads). Asked for a SEG, the series is read from it.

Model rule: the SEG's SeriesDescription names the model (MODEL_BY_DESCRIPTION, one description per model and
project year, as IDC v25 holds them); the series' Modality must be that model's input modality (its meta.json).
Reviewer-corrected SEGs and SEGs of AIMI models this hub does not hold are refused, naming why.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from aimi.batch.manifest import UID_PATTERN
from aimi.errors import ConfigError
from aimi.models import load_model

ANALYSIS_RESULT = "bamf_aimi_annotations"
SEG_MODALITY = "SEG"
#: SEG SeriesDescription -> the model that wrote it (collections and year as IDC v25 holds them).
MODEL_BY_DESCRIPTION: dict[str, str] = {
    "AIMI Kidney Segmentation": "bamf_nnunet_ct_kidney",  # TCGA-KIRC, 2023
    "AIMI kidney tumor cyst AI segmentation": "bamf_nnunet_ct_kidney",  # TCGA-KICH, TCGA-KIRP, CPTAC-CCRCC, 2024
    "AIMI liver-tumor AI segmentation": "bamf_nnunet_ct_liver",  # Colorectal-Liver-Metastases, HCC-TACE-Seg
    "AIMI lung and nodule AI segmentation": "bamf_nnunet_ct_lung",  # NLST, QIN-LUNG-CT, SPIE-AAPM and others
    "AIMI Prostate Segmentation": "bamf_nnunet_mr_prostate",  # ProstateX, Prostate-MRI-US-Biopsy
    "AIMI breast-tumor AI segmentation": "bamf_nnunet_mr_breast",  # Duke-Breast-Cancer-MRI
    "AIMI Brain MRI AI segmentation": "bamf_nnunet_mr_brain",  # UPENN-GBM
}
#: AIMI SEG descriptions of models this hub does not hold, and why they cannot be reproduced here.
NOT_HELD: dict[str, str] = {
    "AIMI liver AI segmentation": "made by the 2023 AIMI liver model (TCGA-LIHC), which this hub does not hold "
                                  "(bamf_nnunet_ct_liver is the 2024 liver-and-tumor model)",
    "AIMI lung and FDG tumor AI segmentation": "made by the AIMI FDG PET/CT lung model, which this hub does not hold",
    "AIMI FDG breast tumor AI segmentation": "made by the AIMI FDG PET/CT breast model, which this hub does not hold",
}
#: "AIMI liver radiologist 7 corrected segmentation": a reviewer's SEG (a reference for `aimi evaluate`).
CORRECTED = re.compile(r"(?i)\bcorrected segmentation$")
_COLUMNS = ("SeriesInstanceUID, StudyInstanceUID, collection_id, Modality, SeriesDescription, analysis_result_id, "
            "series_size_MB, series_aws_url")


class SqlIndex(Protocol):
    """What the queries need: `sql_query(sql)` over the table `index` (BundledIndex, idc_index.IDCClient)."""

    def sql_query(self, sql: str) -> pd.DataFrame: ...


class BundledIndex:
    """idc-index-data's parquet file as the table `index`, read by DuckDB from the file: the table and SQL of
    `IDCClient.sql_query`, which first loads the million rows into pandas and then takes seconds per query."""

    def __init__(self, path: Path | None = None) -> None:
        import duckdb
        import idc_index_data

        self._connection = duckdb.connect()
        parquet = path or Path(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
        self._connection.execute(f"CREATE VIEW index AS SELECT * FROM read_parquet('{parquet}')")

    def sql_query(self, sql: str) -> pd.DataFrame:
        return self._connection.query(sql).to_df()


@dataclass(frozen=True)
class IndexedSeries:
    """One row of the bundled index, as reproduce uses it."""

    uid: str
    study: str
    collection: str
    modality: str
    description: str
    size_mb: float
    url: str  # the bucket prefix idc-index downloads (s5cmd cp '<url>' ...)
    analysis_result: str  # '' for original data


@dataclass(frozen=True)
class Target:
    """What to re-run: the model and its published AI SEGs; `series` is '' when asked for a SEG (read from it)."""

    asked: str
    series: IndexedSeries | None
    model: str
    rule: str
    segs: tuple[IndexedSeries, ...]


def model_of(description: str) -> str:
    """The model that wrote an AIMI SEG of this SeriesDescription; ConfigError naming why there is none."""
    if CORRECTED.search(description):
        raise ConfigError(f"{description!r} is a reviewer-corrected SEG, not a model's output: give the image "
                          "series or the AI SEG (`aimi evaluate` compares AI SEGs with corrected ones)")
    if description in NOT_HELD:
        raise ConfigError(f"{description!r}: {NOT_HELD[description]}")
    if description not in MODEL_BY_DESCRIPTION:
        raise ConfigError(f"{description!r} is not an AIMI SEG description this hub knows "
                          f"({', '.join(sorted(MODEL_BY_DESCRIPTION))})")
    return MODEL_BY_DESCRIPTION[description]


def input_modality(model: str) -> str:
    """The modality of the model's first input, from its meta.json (CT or MR)."""
    return str(load_model(model).meta["summary"]["inputs"][0]["modality"])


def lookup(bundled: SqlIndex, uid: str) -> Target:
    """The model and published AI SEG(s) of an image series or of an AIMI SEG series; ConfigError naming the
    series and the reason when there are none."""
    row = indexed(bundled, uid)
    if row.modality == SEG_MODALITY:
        if row.analysis_result != ANALYSIS_RESULT:
            raise ConfigError(f"series {uid} is a SEG, but not one of IDC's AIMI annotations ({ANALYSIS_RESULT})")
        return Target(uid, None, model_of(row.description), _rule(row.description), (row,))
    by_model: dict[str, list[IndexedSeries]] = {}
    others = []
    for seg in study_segs(bundled, row.study):
        try:
            model = model_of(seg.description)
        except ConfigError as error:
            others.append(str(error))
            continue
        if input_modality(model) == row.modality:
            by_model.setdefault(model, []).append(seg)
    if not by_model:
        found = "; ".join(dict.fromkeys(others)) or "none"
        raise ConfigError(f"series {uid} ({row.modality}): IDC published no AIMI AI SEG of a {row.modality} model in "
                          f"its study (AIMI SEGs there: {found})")
    if len(by_model) > 1:
        raise ConfigError(f"series {uid}: its study holds AI SEGs of {', '.join(sorted(by_model))}; give the SEG "
                          "series UID to choose")
    [(model, segs)] = by_model.items()
    return Target(uid, row, model, _rule(segs[0].description), tuple(segs))


def indexed(bundled: SqlIndex, uid: str) -> IndexedSeries:
    """The index row of one series; ConfigError when the UID is malformed or not in the bundled index."""
    if not UID_PATTERN.match(uid) or len(uid) > 64:
        raise ConfigError(f"{uid!r} is not a SeriesInstanceUID")
    rows = _rows(bundled, f"SELECT {_COLUMNS} FROM index WHERE SeriesInstanceUID = '{uid}'")
    if not rows:
        raise ConfigError(f"series {uid} is not in the bundled IDC index (idc-index-data {index_version()})")
    return rows[0]


def study_segs(bundled: SqlIndex, study: str) -> list[IndexedSeries]:
    """The AIMI SEG series of a study, in UID order."""
    return _rows(bundled, f"SELECT {_COLUMNS} FROM index WHERE StudyInstanceUID = '{study}' AND "
                         f"analysis_result_id = '{ANALYSIS_RESULT}' AND Modality = '{SEG_MODALITY}' "
                         "ORDER BY SeriesInstanceUID")


def model_segs(bundled: SqlIndex, model: str) -> list[str]:
    """Every published AI SEG series of `model`, in UID order."""
    descriptions = ", ".join(f"'{d}'" for d, m in MODEL_BY_DESCRIPTION.items() if m == model)
    if not descriptions:
        known = ", ".join(sorted(set(MODEL_BY_DESCRIPTION.values())))
        raise ConfigError(f"{model}: IDC published no AIMI SEGs of it (models with AIMI SEGs: {known})")
    frame = bundled.sql_query(f"SELECT SeriesInstanceUID FROM index WHERE analysis_result_id = '{ANALYSIS_RESULT}' "
                             f"AND SeriesDescription IN ({descriptions}) ORDER BY SeriesInstanceUID")
    return [str(uid) for uid in frame["SeriesInstanceUID"]]


def sample_segs(bundled: SqlIndex, model: str, count: int, seed: int) -> list[str]:
    """`count` of the model's published AI SEGs, the same ones for the same seed and index version."""
    every = model_segs(bundled, model)
    if not 0 < count <= len(every):
        raise ConfigError(f"--sample {model} {count}: IDC holds {len(every)} AI SEGs of {model}; ask for 1 to "
                          f"{len(every)}")
    return random.Random(seed).sample(every, count)


def index_version() -> str:
    """The idc-index-data release the queries ran on (the IDC data release it mirrors)."""
    from importlib import metadata

    try:
        return metadata.version("idc-index-data")
    except metadata.PackageNotFoundError:
        return "not installed"


def _rule(description: str) -> str:
    return f"SEG SeriesDescription {description!r} -> {MODEL_BY_DESCRIPTION[description]}"


def _rows(bundled: SqlIndex, sql: str) -> list[IndexedSeries]:
    frame = bundled.sql_query(sql)
    return [IndexedSeries(uid=str(r["SeriesInstanceUID"]), study=str(r["StudyInstanceUID"]),
                          collection=_text(r["collection_id"]), modality=_text(r["Modality"]),
                          description=_text(r["SeriesDescription"]), size_mb=float(r["series_size_MB"] or 0.0),
                          url=_text(r["series_aws_url"]), analysis_result=_text(r["analysis_result_id"]))
            for r in frame.to_dict("records")]


def _text(value: object) -> str:
    """A string cell; pandas gives NULL as None or NaN."""
    return value if isinstance(value, str) else ""
