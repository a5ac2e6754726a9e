"""`aimi evaluate PREDICTION REFERENCE -o OUT`: AI SEGs against reviewer-corrected SEGs.

Three ways to pair SEGs:
- two SEG files: one case;
- two folders (any nesting): SEGs paired by the SeriesInstanceUID they reference; unpaired SEGs are listed in
  OUT/unpaired.csv (not every AI SEG was reviewed), a folder holding two SEGs of one series is a failed case;
- `--qa-results qa-results.csv` with the two folders (ai-segmentations-dcm/, qa-segmentations-dcm/): one case
  per row, that is per series and reviewer; AISegmentation / CorrectedSegmentation name a file (relative to the
  folder or the CSV) or a UID of the SEG (SeriesInstanceUID or SOPInstanceUID), else the row's SeriesInstanceUID is
  matched to the series a SEG references. A blank CorrectedSegmentation is a reviewed case whose reviewer strongly
  agreed and gave no correction: the AI SEG is its reference (as the paper and the authors' notebooks count it;
  `reference` = ai in evaluation.csv). Where the CSV has a Validation column, only its true rows are evaluated
  (the authors' `qa_df = df[df.Validation]`: the non-expert scored every AI SEG, the radiologist only the
  validation set). `--year` (AimiProjectYear) and `--reviewers rad|ne` (Reviewer rad*, ne*) select rows; Likert
  answers are counted over the selected rows, per segment, year and reviewer kind. Tables are grouped by year (the
  notebooks' aimiv1 = 2023, aimiv2 = 2024) and, with `--by-reviewer`, by reviewer kind.
- `--idc TASK`: the task's zip of the published QA record (Zenodo 13244892; `--archive ZIP` for a local copy),
  checked against the record, unpacked under OUT/qa-record/ and evaluated as with --qa-results.
Outputs under OUT: evaluation.csv, summary.csv, summary.md, table4.csv/.md (the paper's layout; the Markdown
headed by what was evaluated and the tolerances), boxplot-<task>.png, reviewed.csv (reviewed cases per task, year
and reviewer kind: Table 1's "evaluated"), likert.csv / unpaired.csv, and with --compare-published
compare-published.md (the published figures beside the computed ones).
Exit codes: 0 every case evaluated, 1 a case failed (named on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pydicom

from aimi.atomic import is_temporary
from aimi.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, FetchError
from aimi.evaluate import SegmentResult, evaluate_pair
from aimi.evaluate import report as out
from aimi.evaluate.published import comparison_markdown
from aimi.evaluate.qa_record import QA_CSV, QA_FILES, QA_RECORD, qa_record
from aimi.evaluate.report import REVIEWER_KINDS
from aimi.evaluate.segs import SEG_SOP_CLASSES, SegError

QA_REQUIRED = ("SeriesInstanceUID", "AISegmentation", "CorrectedSegmentation")
#: qa-results.csv Validation values, as pandas reads a boolean column.
VALIDATION = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
#: Table 4 as printed in the paper: under "NSD" it shows values such as 10.54 ± 14.43, which a fraction cannot be.
PRINTED_NSD_NOTE = ("NSD here is the fraction of both surfaces within the tolerance (0-1). The paper's printed "
                    "Table 4 shows values such as 10.54 ± 14.43 under \"NSD\" that cannot be a fraction and look "
                    "like a mean surface distance: compare those with the MSD column.")


@dataclass(frozen=True)
class Case:
    """One comparison: a reviewer (reference) SEG and an AI (prediction) SEG."""

    name: str
    reference: Path
    prediction: Path
    reviewer: str = ""
    year: str = ""
    reference_kind: str = "corrected"


@dataclass(frozen=True)
class QaFilter:
    """Which qa-results.csv rows to evaluate: AimiProjectYear values and Reviewer kinds; empty takes every row."""

    years: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()

    def takes(self, row: dict[str, str]) -> bool:
        year, reviewer = row.get("AimiProjectYear", "").strip(), row.get("Reviewer", "").strip().casefold()
        return ((not self.years or year in self.years)
                and (not self.reviewers or reviewer.startswith(self.reviewers)))

    def describe(self) -> str:
        years = ", ".join(self.years) if self.years else "every year"
        return f"{years}; {', '.join(self.reviewers) if self.reviewers else 'every reviewer'}"


@dataclass(frozen=True)
class QaRows:
    """qa-results.csv as evaluated: the rows taken (line number, row), and how many there were before each cut."""

    path: Path
    taken: list[tuple[int, dict[str, str]]]
    total: int
    validation: int

    def describe(self, selected: QaFilter) -> str:
        return (f"{self.path.name}: {self.total} rows, {self.validation} in the validation set, "
                f"{len(self.taken)} of them selected ({selected.describe()})")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="Dice, NSD, HD95 and detection of AI SEGs vs reviewer SEGs")
    parser.add_argument("prediction", type=Path, nargs="?", help="AI SEG file or folder (ai-segmentations-dcm/)")
    parser.add_argument("reference", type=Path, nargs="?", help="reviewer SEG file or folder (qa-segmentations-dcm/)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the CSVs, table and plots")
    parser.add_argument("--qa-results", type=Path, help="qa-results.csv pairing the two folders' SEGs")
    parser.add_argument("--tolerance", action="append", default=[], metavar="SEGMENT=MM",
                        help="NSD tolerance for one SegmentLabel, over the per-task defaults (repeatable)")
    parser.add_argument("--idc", choices=sorted(QA_FILES), metavar="TASK",
                        help=f"the published QA record of TASK ({', '.join(QA_FILES)}), from Zenodo {QA_RECORD}")
    parser.add_argument("--archive", type=Path, help="with --idc: a local copy of the task's zip (offline)")
    parser.add_argument("--compare-published", action="store_true",
                        help="print the published figures (models/<name>/figures.toml) beside the computed ones")
    parser.add_argument("--year", action="append", default=[], metavar="YEAR",
                        help="with --qa-results: only rows of this AimiProjectYear (repeatable)")
    parser.add_argument("--reviewers", action="append", default=[], choices=REVIEWER_KINDS,
                        help="with --qa-results: only rows of radiologists (Reviewer rad*) or non-experts (ne*)")
    parser.add_argument("--by-reviewer", action="store_true",
                        help="tables per reviewer kind (rad, ne) as well as per task, year and segment")


def run(args: argparse.Namespace) -> int:
    if (args.idc is None) == (args.prediction is None or args.reference is None) or (args.archive and not args.idc):
        print("aimi evaluate: error: give PREDICTION and REFERENCE (two SEG files or folders), or --idc TASK "
              "[--archive ZIP]", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.idc:
            args.prediction, args.reference, args.qa_results = _idc_inputs(args.idc, args.archive, args.output)
    except FetchError as error:
        print(f"aimi evaluate: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        tolerances = parse_tolerances(args.tolerance)
        if (args.year or args.reviewers) and args.qa_results is None:
            raise ValueError("--year and --reviewers select rows of --qa-results")
        selected = QaFilter(tuple(args.year), tuple(args.reviewers))
        cases, failures, qa = _cases(args.prediction, args.reference, args.qa_results, args.output, selected)
    except (ValueError, OSError) as error:
        print(f"aimi evaluate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    results: list[SegmentResult] = []
    for case in cases:
        try:
            results += [replace(result, reviewer=case.reviewer, year=case.year, reference=case.reference_kind)
                        for result in evaluate_pair(case.reference, case.prediction, case.name, tolerances)]
        except (SegError, OSError) as error:
            failures.append(f"case {case.name}: {error}")
    source = qa.describe(selected) if qa else f"{args.prediction} against {args.reference}"
    _write_outputs(results, qa, args.output, Layout(args.by_reviewer, args.compare_published, source))
    for failure in failures:
        print(f"aimi evaluate: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _idc_inputs(task: str, archive: Path | None, output: Path) -> tuple[Path, Path, Path]:
    """The two SEG folders and qa-results.csv of the task's published QA record, unpacked under OUT/qa-record/."""
    root = qa_record(task, output / "qa-record", archive=archive)
    return root / "ai-segmentations-dcm", root / "qa-segmentations-dcm", root / QA_CSV


def parse_tolerances(values: Iterable[str]) -> dict[str, float]:
    """'Breast=7' -> {'Breast': 7.0}; a bad entry is a ValueError naming it."""
    tolerances = {}
    for value in values:
        label, sep, mm = value.rpartition("=")
        try:
            tolerance = float(mm)
        except ValueError:
            tolerance = -1.0
        if not sep or not label.strip() or tolerance < 0:
            raise ValueError(f"--tolerance {value!r}: expected SEGMENT=MM with MM >= 0, e.g. Breast=7")
        tolerances[label.strip()] = tolerance
    return tolerances


def _cases(
    prediction: Path, reference: Path, qa_results: Path | None, output: Path, selected: QaFilter
) -> tuple[list[Case], list[str], QaRows | None]:
    """The cases to evaluate, the failures found while pairing, and the qa-results rows taken (for the counts)."""
    output.mkdir(parents=True, exist_ok=True)
    if qa_results is not None:
        qa = _qa_rows(qa_results, selected)
        return (*_qa_cases(prediction, reference, qa_results, qa.taken), qa)
    if prediction.is_file() and reference.is_file():
        return [Case(prediction.stem, reference, prediction)], [], None
    if prediction.is_dir() and reference.is_dir():
        cases, failures = _folder_cases(prediction, reference, output / "unpaired.csv")
        return cases, failures, None
    raise ValueError(f"{prediction} and {reference} must be two SEG files or two folders")


def _qa_rows(path: Path, selected: QaFilter) -> QaRows:
    """The rows of the validation set (every row without a Validation column) that `selected` takes."""
    rows = list(enumerate(_read_qa(path), start=2))
    validation = [(number, row) for number, row in rows if _in_validation(path, number, row)]
    return QaRows(path, [(n, row) for n, row in validation if selected.takes(row)], len(rows), len(validation))


def _in_validation(path: Path, number: int, row: dict[str, str]) -> bool:
    if "Validation" not in row:
        return True
    value = VALIDATION.get(row["Validation"].strip().casefold())
    if value is None:
        raise ValueError(f"{path} line {number}: Validation is {row['Validation']!r}, expected True or False")
    return value


def _folder_cases(prediction: Path, reference: Path, unpaired_csv: Path) -> tuple[list[Case], list[str]]:
    predictions, pred_failures = _by_referenced_series(prediction)
    references, ref_failures = _by_referenced_series(reference)
    cases = [Case(uid, references[uid], predictions[uid]) for uid in predictions if uid in references]
    unpaired = [{"folder": "prediction", "file": str(p), "referenced_series": uid}
                for uid, p in predictions.items() if uid not in references]
    unpaired += [{"folder": "reference", "file": str(p), "referenced_series": uid}
                 for uid, p in references.items() if uid not in predictions]
    out.write_csv(unpaired_csv, ["folder", "file", "referenced_series"], unpaired)
    return cases, pred_failures + ref_failures


def _by_referenced_series(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Referenced SeriesInstanceUID -> SEG file; two SEGs of one series is a failure (which one is meant?)."""
    found: dict[str, Path] = {}
    failures = []
    for path, header in _seg_headers(folder):
        uid = str(header.ReferencedSeriesSequence[0].SeriesInstanceUID)
        if uid in found:
            failures.append(f"series {uid}: two SEGs in {folder}: {found[uid]} and {path}")
        found[uid] = path
    return found, failures


def _seg_headers(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Every SEG file under `folder` with its header (pixels not read); other files are ignored."""
    headers = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not is_temporary(p)):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError):
            continue
        if str(header.get("SOPClassUID", "")) in SEG_SOP_CLASSES and "ReferencedSeriesSequence" in header:
            headers.append((path, header))
    return headers


def _qa_cases(prediction: Path, reference: Path, qa_results: Path,
              rows: list[tuple[int, dict[str, str]]]) -> tuple[list[Case], list[str]]:
    """One case per selected row (line number, row); a blank correction makes the AI SEG the reference."""
    pred_index, ref_index = _uid_index(prediction), _uid_index(reference)
    cases, failures = [], []
    for number, row in rows:
        series, reviewer = row["SeriesInstanceUID"].strip(), row.get("Reviewer", "").strip()
        ai = _resolve(row["AISegmentation"], series, prediction, qa_results.parent, pred_index)
        blank = not row["CorrectedSegmentation"].strip()
        corrected = ai if blank else _resolve(row["CorrectedSegmentation"], series, reference, qa_results.parent,
                                                 ref_index)
        if ai is None or corrected is None:
            missing = "AISegmentation" if ai is None else "CorrectedSegmentation"
            failures.append(f"{qa_results} line {number}: no SEG found for {missing} of series {series}")
            continue
        cases.append(Case(f"{series} {reviewer}" if reviewer else series, corrected, ai, reviewer,
                          row.get("AimiProjectYear", "").strip(), "ai" if blank else "corrected"))
    return cases, failures


def _read_qa(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in QA_REQUIRED if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; qa-results.csv needs {list(QA_REQUIRED)}")
        return [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]


def _uid_index(folder: Path) -> dict[str, Path]:
    """A folder's SEGs by their own SOPInstanceUID and SeriesInstanceUID and by the series they reference."""
    index: dict[str, Path] = {}
    for path, header in _seg_headers(folder):
        index.setdefault(str(header.ReferencedSeriesSequence[0].SeriesInstanceUID), path)
        index[str(header.SeriesInstanceUID)] = path
        index[str(header.SOPInstanceUID)] = path
    return index


def _resolve(value: str, series: str, folder: Path, csv_dir: Path, index: dict[str, Path]) -> Path | None:
    """A qa-results cell as a file path, else as a SEG UID, else the SEG that references the row's series."""
    value = value.strip()
    for candidate in (folder / value, csv_dir / value):
        if value and candidate.is_file():
            return candidate
    return index.get(value) or index.get(Path(value).stem) or index.get(series)


@dataclass(frozen=True)
class Layout:
    """How the tables are cut and headed."""

    by_reviewer: bool
    compare_published: bool
    source: str  # what was evaluated, for the table4.md header


def _write_outputs(results: list[SegmentResult], qa: QaRows | None, output: Path, layout: Layout) -> None:
    out.write_results_csv(results, output / "evaluation.csv")
    summary = out.summarise(results, by_reviewer=layout.by_reviewer)
    markdown = out.write_summary(summary, output / "summary.csv", output / "summary.md")
    out.write_table4(summary, output / "table4.csv", output / "table4.md", _table4_header(results, layout.source))
    out.write_csv(output / "reviewed.csv", out.REVIEWED_COLUMNS, out.reviewed_counts(results))
    if layout.compare_published:
        comparison = comparison_markdown(summary)
        (output / "compare-published.md").write_text(comparison)
        markdown += "\n" + comparison
    if qa:
        out.write_likert(out.likert_counts(row for _, row in qa.taken), output / "likert.csv")
    if results:
        out.write_boxplots(results, output)
    print(markdown, end="")


def _table4_header(results: list[SegmentResult], source: str) -> list[str]:
    """What table4.md was computed from: the input and its cuts, the cases, the NSD tolerance of each segment."""
    cases = {(r.case, r.reference) for r in results}
    blank = sum(reference == "ai" for _, reference in cases)
    tolerances = {f"{r.task} {r.segment}": f"{r.tolerance_mm:g}" for r in results}
    return [
        "# Table 4: AI segmentations against reviewer segmentations",
        "",
        f"- Evaluated: {source}.",
        f"- Cases (series and reviewer): {len(cases)}, of which {blank} without a correction (the AI SEG is the "
        "reference: Dice 1).",
        "- NSD tolerance (mm): " + (", ".join(f"{k} {v}" for k, v in tolerances.items()) or "none") + ".",
        f"- {PRINTED_NSD_NOTE}",
    ]
