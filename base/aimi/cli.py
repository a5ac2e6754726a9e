"""The `aimi` command line (the containers' entrypoint). Exit codes: 0 done, 1 a case failed, 2 usage/config error."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aimi.app import run_model
from aimi.batch.cli import add_parser as add_batch_parser
from aimi.batch.cli import run as run_batch
from aimi.core.log import configure
from aimi.core.ports import ports_table
from aimi.core.workflow import describe_wiring, load_workflow
from aimi.errors import EXIT_FAILED, EXIT_OK, ConfigError, exit_status
from aimi.evaluate.cli import add_parser as add_evaluate_parser
from aimi.evaluate.cli import run as run_evaluate
from aimi.models import available_models, load_model
from aimi.registry import registry
from aimi.reproduce.cli import add_parser as add_reproduce_parser
from aimi.reproduce.cli import run as run_reproduce
from aimi.review.cli import add_parser as add_review_parser
from aimi.review.cli import run as run_review
from aimi.run_options import add_run_options, run_options
from aimi.weights import (
    FetchError,
    WeightsMissing,
    default_weights_dir,
    fetch,
    import_archive,
    provenance,
    verify,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimi", description="BAMF AIMI nnU-Net models: DICOM in, DICOM SEG out")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="segment every suitable series under a DICOM folder")
    run.add_argument("model", help="model folder name, e.g. bamf_nnunet_ct_kidney (see `aimi models`)")
    run.add_argument("-i", "--input", type=Path, required=True, help="DICOM folder (any nesting, any file names)")
    run.add_argument("-o", "--output", type=Path, required=True, help="output folder for SEGs and run-report.json")
    add_run_options(run)
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed case")

    models = commands.add_parser("models", help="list the models, their inputs, segments and weight status")
    models.add_argument("--json", action="store_true")
    models.add_argument("--weights", type=Path)
    models.add_argument("--graph", metavar="MODEL", help="print MODEL's data flow: each step's ports and artifacts")
    models.add_argument("--workflow", default="default", help="with --graph: the workflow to show")
    models.add_argument("--ports", action="store_true", help="print every module's ports (a Markdown table)")

    weights = commands.add_parser("weights", help="download, check or convert model weights")
    actions = weights.add_subparsers(dest="action", required=True)
    for action, text in (("fetch", "download from the Zenodo record, check size and MD5, unpack (and convert v1)"),
                         ("verify", "check the weights against the manifest")):
        parser_for = actions.add_parser(action, help=text)
        parser_for.add_argument("model")
        parser_for.add_argument("--weights", type=Path)
    actions.choices["fetch"].add_argument("--print-record", action="store_true",
                                          help="also save each Zenodo record's JSON in the weights dir "
                                               "(<model>/<id>.zenodo-record.json), for `weights import` offline")
    offline = actions.add_parser("import", help="install an archive obtained without network, checked like fetch")
    offline.add_argument("model")
    offline.add_argument("archive", type=Path, help="the zip as published on Zenodo")
    offline.add_argument("--id", default="", help="weights entry (default: the entry whose file name matches)")
    offline.add_argument("--md5", default="", help="the file's MD5 as the Zenodo record states it")
    offline.add_argument("--size", type=int, default=-1, help="the file's size in bytes as the record states it")
    offline.add_argument("--record-json", type=Path, help="a record saved by `aimi weights fetch --print-record`")
    offline.add_argument("--weights", type=Path)
    convert = actions.add_parser("convert-v1", help="nnU-Net v1 model folder -> nnU-Net v2 model folder")
    convert.add_argument("src", type=Path, help="v1 folder holding plans.pkl and fold_k/")
    convert.add_argument("dst", type=Path, help="v2 model folder to write")
    convert.add_argument("--force", action="store_true", help="replace DST if it exists")

    testmodel = commands.add_parser("testmodel", help="build a tiny real nnU-Net v2 model with MODEL's channels/labels")
    testmodel.add_argument("model")
    testmodel.add_argument("out", type=Path, help="a weights folder: the model lands in OUT/<model>/<weights id>/")
    testmodel.add_argument("--min-dice", type=float, help="fit until every label reaches this Dice on each fresh "
                           "validation case (default 0.9)")
    testmodel.add_argument("--max-steps", type=int, help="step budget; the build fails naming the label short of "
                           "the target (default 2000)")
    testmodel.add_argument("--spec", type=Path, help="a TOML file of [MODEL.<weights id>] tables (channels, labels, "
                           "intensities) like aimi_testkit/testmodels.toml, for a model the test kit does not know")

    add_evaluate_parser(commands)
    add_review_parser(commands)
    add_reproduce_parser(commands)
    add_batch_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.verbose)
    return exit_status(lambda: _dispatch(args), usage=(ConfigError, WeightsMissing), failure=(FetchError,))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "review":
        return run_review(args)
    if args.command == "reproduce":
        return run_reproduce(args)
    if args.command == "batch":
        return run_batch(args)
    weights_dir = getattr(args, "weights", None) or default_weights_dir()
    if args.command == "run":
        return run_model(args.model, args.input, args.output, workflow=args.workflow, weights_dir=weights_dir,
                         options=run_options(args), assignments=args.assignments)
    if args.command == "models" and (args.graph or args.ports):
        return _graph(args.graph, args.workflow)
    if args.command == "models":
        return _models(args.json, weights_dir)
    if args.command == "weights" and args.action == "convert-v1":
        return _convert(args.src, args.dst, args.force)
    if args.command == "weights" and args.action == "import":
        print(import_archive(load_model(args.model).manifest, weights_dir, args.archive, entry_id=args.id,
                             md5=args.md5, size=args.size, record_json=args.record_json))
        return EXIT_OK
    if args.command == "weights":
        return _weights(args.action, args.model, weights_dir, getattr(args, "print_record", False))
    return _testmodel(args.model, args.out, {"min_dice": args.min_dice, "max_steps": args.max_steps}, args.spec)


def _testmodel(model: str, out: Path, overrides: dict[str, float | None], specs: Path | None) -> int:
    from aimi_testkit.specs import SPECS_FILE
    from aimi_testkit.testmodel import QualityTarget, TestModelQualityError  # torch: imported only when needed
    from aimi_testkit.testmodel_cli import build_for_model, quality_summary

    target = QualityTarget(**{key: value for key, value in overrides.items() if value is not None})
    try:
        built = build_for_model(load_model(model), out, target, specs or SPECS_FILE)
    except TestModelQualityError as error:
        print(f"aimi testmodel: {error}", file=sys.stderr)
        return EXIT_FAILED
    for path in built:
        print(quality_summary(path))
    return EXIT_OK


def _graph(model_name: str | None, workflow: str) -> int:
    """The ports of every module, or one model's wiring, as checked at load time (a wiring error exits 2)."""
    if not model_name:
        print(ports_table(list(registry().values())))
        return EXIT_OK
    model = load_model(model_name)
    print(describe_wiring(load_workflow(model.workflow_path(workflow), registry())))
    return EXIT_OK


def _models(as_json: bool, weights_dir: Path) -> int:
    rows = []
    for name in available_models():
        model = load_model(name)
        meta = model.meta
        rows.append({
            "name": name,
            "title": meta.get("title", ""),
            "inputs": [i.get("description", "") for i in meta.get("summary", {}).get("inputs", [])],
            "segments": [c for o in meta.get("summary", {}).get("outputs", []) for c in o.get("classes", [])],
            "workflows": model.workflows(),
            "weights": "ok" if not verify(model.manifest, weights_dir) else "missing or unverified",
            "provenance": {e.id: provenance(weights_dir, model.manifest, e) for e in model.manifest.weights},
        })
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:28} {row['weights']:22} {row['title']}")
            print(f"{'':28} segments: {', '.join(row['segments'])}")
            print(f"{'':28} workflows: {', '.join(row['workflows'])}")
    return EXIT_OK


def _convert(src: Path, dst: Path, force: bool) -> int:
    from aimi.convert_v1 import ConversionError, convert_v1

    try:
        print(convert_v1(src, dst, replace=force))
    except (ConversionError, FileExistsError) as error:
        raise ConfigError(str(error)) from None
    return EXIT_OK


def _weights(action: str, name: str, weights_dir: Path, save_record: bool) -> int:
    model = load_model(name)
    if action == "fetch":
        for path in fetch(model.manifest, weights_dir, save_record=save_record):
            print(path)
        return EXIT_OK
    problems = verify(model.manifest, weights_dir)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{name}: weights present and consistent with the manifest ({weights_dir})")
    return EXIT_FAILED if problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
