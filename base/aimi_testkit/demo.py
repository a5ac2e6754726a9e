"""`make demo`: a synthetic CT study, a tiny kidney model, a real `aimi run` - then where to look.

    python -m aimi_testkit.demo [--out demo-output]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from aimi.models import load_model
from aimi.weights import WeightsMissing, require_weights
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import StudyInfo
from aimi_testkit.testmodel_cli import build_for_model, quality_summary, spec_for

MODEL = "bamf_nnunet_ct_kidney"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    args = parser.parse_args(argv)
    model = load_model(MODEL)
    inputs, weights, outputs = args.out / "input", args.out / "weights", args.out / "output"
    if not inputs.is_dir():
        print(f"writing a synthetic CT series (64x64x24, 2 mm pixels, 3 mm slices) to {inputs}")
        spec = spec_for(model, "kidney")
        write_phantom_series(inputs / "ct", spec.intensities, study=StudyInfo.new("AIMI-DEMO"),
                             series_description="DEMO ABDOMEN 3MM", file_names="random")
    try:
        require_weights(weights, model.manifest)
    except WeightsMissing:
        print(f"building a tiny real nnU-Net v2 kidney model in {weights} (stands in for the Zenodo weights)")
        for folder in build_for_model(model, weights):
            print(quality_summary(folder))
    command = [sys.executable, "-m", "aimi.cli", "run", MODEL, "-i", str(inputs), "-o", str(outputs),
               "--weights", str(weights), "--set", "DataOrganizer.qc_png=true",
               "--set", "DataOrganizer.labelmap_format=nrrd"]
    print("running:", " ".join(command[2:]))
    status = subprocess.run(command, check=False).returncode
    report = json.loads((outputs / "run-report.json").read_text())
    print(f"\nexit status {status}; report: {outputs / 'run-report.json'}")
    for case in report["cases"]:
        print(f"case {case['id']}: {case['status']} {case.get('error') or ''}")
        for output in case["outputs"]:
            print(f"  {outputs / output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
