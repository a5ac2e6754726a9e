"""What IDC published for real series, from the bundled idc-index data (offline): the published AI SEG series and
the model, for image series and SEG series of every AIMI task; the refusals, each naming the series and why; the
seeded sample; and the downloads `--dry-run` prints, with the bucket URLs the index holds."""

from __future__ import annotations

from typing import Any

import pytest

from aimi.cli import main
from aimi.errors import ConfigError
from aimi.reproduce.index import lookup, model_segs, sample_segs
from aimi.reproduce.runs import check_reproducible

#: (image series, the one AIMI AI SEG of its study, model): real UIDs of idc-index-data 25.0.5 (IDC v25).
IMAGE_SERIES = [
    ("1.3.6.1.4.1.14519.5.2.1.6450.4004.185347454720689529093851893544",  # TCGA-KIRC, 2023 kidney SEG
     "1.2.276.0.7230010.3.1.3.17436516.2321525.1693014389.978063", "bamf_nnunet_ct_kidney"),
    ("1.3.6.1.4.1.14519.5.2.1.6450.2626.169506500847699496846176396585",  # CPTAC-CCRCC, 2024 kidney SEG
     "1.2.276.0.7230010.3.1.3.17436516.3856452.1720464963.281039", "bamf_nnunet_ct_kidney"),
    ("1.3.6.1.4.1.14519.5.2.1.1706.8374.488599344778792210256227624538",  # HCC-TACE-Seg
     "1.2.276.0.7230010.3.1.3.17436516.3719924.1714850106.930967", "bamf_nnunet_ct_liver"),
    ("1.3.6.1.4.1.14519.5.2.1.3098.5025.189776676692730066910446197902",  # Anti-PD-1-Lung
     "1.2.276.0.7230010.3.1.3.17436516.2098650.1720639405.357407", "bamf_nnunet_ct_lung"),
    ("1.3.6.1.4.1.14519.5.2.1.7311.5101.100000082759836574166944843130",  # ProstateX
     "1.2.276.0.7230010.3.1.3.17436516.869836.1691079366.411467", "bamf_nnunet_mr_prostate"),
    ("1.3.6.1.4.1.14519.5.2.1.107262965749978035331652357220510241458",  # Duke: a corrected SEG beside it
     "1.2.276.0.7230010.3.1.3.17436516.3900769.1714669375.526333", "bamf_nnunet_mr_breast"),
]
KIDNEY_SEG = "1.2.276.0.7230010.3.1.3.17436516.3902947.1720465128.28033"  # TCGA-KICH; `make demo REAL=1`
BRAIN_SEG = "1.2.276.0.7230010.3.1.3.17436516.569503.1722970670.465196"  # UPENN-GBM
LIHC_SEG = "1.2.276.0.7230010.3.1.3.17436516.249611.1696966535.756905"  # "AIMI liver AI segmentation" (2023)
NO_AIMI_CT = "1.3.6.1.4.1.14519.5.2.1.1357.4004.118173672917527827352992545994"  # TCGA-KIRC, no analysis results
#: AI SEGs per model in the bundled index, as measured (corrected SEGs and models not held left out).
AI_SEGS = {"bamf_nnunet_ct_kidney": 247, "bamf_nnunet_ct_liver": 515, "bamf_nnunet_ct_lung": 1588,
           "bamf_nnunet_mr_prostate": 1164, "bamf_nnunet_mr_breast": 805, "bamf_nnunet_mr_brain": 2164}


@pytest.mark.parametrize(("series", "seg", "model"), IMAGE_SERIES)
def test_an_image_series_gives_its_studys_published_ai_seg_and_the_model(idc: Any, series: str, seg: str,
                                                                         model: str) -> None:
    target = lookup(idc, series)
    assert (target.model, [s.uid for s in target.segs]) == (model, [seg])
    assert target.series is not None and target.series.uid == series and target.segs[0].study == target.series.study
    assert target.segs[0].url.startswith("s3://") and target.segs[0].size_mb > 0
    check_reproducible(model)


def test_a_seg_series_gives_itself_and_the_model_of_its_description(idc: Any) -> None:
    target = lookup(idc, KIDNEY_SEG)
    assert target.series is None and [s.uid for s in target.segs] == [KIDNEY_SEG]
    assert target.rule == "SEG SeriesDescription 'AIMI kidney tumor cyst AI segmentation' -> bamf_nnunet_ct_kidney"


def test_every_model_has_published_ai_segs_and_a_seeded_sample_is_reproducible(idc: Any) -> None:
    assert {model: len(model_segs(idc, model)) for model in AI_SEGS} == AI_SEGS
    first = sample_segs(idc, "bamf_nnunet_ct_kidney", 3, seed=7)
    assert first == sample_segs(idc, "bamf_nnunet_ct_kidney", 3, seed=7) != sample_segs(idc, "bamf_nnunet_ct_kidney",
                                                                                          3, seed=8)
    assert set(first) <= set(model_segs(idc, "bamf_nnunet_ct_kidney"))
    with pytest.raises(ConfigError, match="IDC holds 247 AI SEGs of bamf_nnunet_ct_kidney; ask for 1 to 247"):
        sample_segs(idc, "bamf_nnunet_ct_kidney", 248, seed=0)


@pytest.mark.parametrize(("uid", "reason"), [
    (LIHC_SEG, "2023 AIMI liver model .TCGA-LIHC., which this hub does not hold"),
    ("1.2.276.0.7230010.3.1.3.17436516.3900769.1714669375.526334", "is not in the bundled IDC index"),
    ("1.2.3.x", "is not a SeriesInstanceUID"),
    (NO_AIMI_CT, f"series {NO_AIMI_CT} .CT.: IDC published no AIMI AI SEG of a CT model in its study"),
])
def test_series_without_a_reproducible_aimi_seg_are_refused_naming_why(idc: Any, uid: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        lookup(idc, uid)


def test_a_corrected_seg_is_refused_and_the_brain_model_is_named_but_not_rerun(idc: Any) -> None:
    corrected = idc.sql_query("SELECT SeriesInstanceUID FROM index WHERE SeriesDescription = "
                              "'AIMI prostate radiologist 6 corrected segmentation' ORDER BY 1 LIMIT 1")
    with pytest.raises(ConfigError, match="reviewer-corrected SEG, not a model's output"):
        lookup(idc, str(corrected["SeriesInstanceUID"][0]))
    assert lookup(idc, BRAIN_SEG).model == "bamf_nnunet_mr_brain"
    with pytest.raises(ConfigError, match="several series of a study; reproduce re-runs models that segment one"):
        check_reproducible("bamf_nnunet_mr_brain")


def test_dry_run_prints_each_download_with_its_size_and_bucket_url(idc: Any, capsys: pytest.CaptureFixture,
                                                                   tmp_path: Any) -> None:
    series, seg, _ = IMAGE_SERIES[0]
    assert main(["reproduce", series, "--dry-run", "-o", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    segs = idc.sql_query(f"SELECT SeriesInstanceUID, series_aws_url FROM index WHERE SeriesInstanceUID IN "
                         f"('{series}', '{seg}')").set_index("SeriesInstanceUID")["series_aws_url"]
    assert lines[0].startswith("model bamf_nnunet_ct_kidney, workflow as-published (SEG SeriesDescription "
                               "'AIMI Kidney Segmentation'")
    assert lines[1].startswith(f"published AI SEG {seg} (SEG, tcga_kirc, ")
    assert lines[1].endswith(f"s5cmd --no-sign-request --endpoint-url https://s3.amazonaws.com cp '{segs[seg]}' "
                             f"'{tmp_path}/published/{seg}/'")
    assert lines[2].endswith(f"cp '{segs[series]}' '{tmp_path}/source/{series}/'")
    assert not any(tmp_path.iterdir())
    assert main(["reproduce", BRAIN_SEG, "--dry-run", "-o", str(tmp_path)]) == 2
