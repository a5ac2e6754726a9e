"""The model cards (models/<name>/meta.json) must tell the truth and stay traceable: each validates against MHub's
meta.json rules (tests/support/mhub_meta_schema.json), names the segments its default workflow writes, prints only
figures that its figures.toml lists with their source, points at the Zenodo records its manifest downloads, and says
which workflows it has. A figure changed in one place and not the other, or a weights record swapped, fails here.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SCHEMA = json.loads((ROOT / "tests" / "support" / "mhub_meta_schema.json").read_text())
MODEL_NAMES = sorted(path.parent.name for path in MODELS.glob("*/manifest.toml"))
#: https://zenodo.org/records/<n>, https://zenodo.org/record/<n>, https://doi.org/10.5281/zenodo.<n>
ZENODO = re.compile(r"zenodo\.org/records?/(\d+)|10\.5281/zenodo\.(\d+)")


def _card(name: str) -> dict[str, Any]:
    return json.loads((MODELS / name / "meta.json").read_text())


def _figures(name: str) -> dict[str, Any]:
    return tomllib.loads((MODELS / name / "figures.toml").read_text())


def _zenodo_record(uri: str) -> str | None:
    match = ZENODO.search(uri)
    return (match.group(1) or match.group(2)) if match else None


def _card_figures(card: dict[str, Any]) -> dict[str, Any]:
    """Every figure the card prints, by key: "<section>.<table label>.<entry>" and "summary.data.<part>.vol_samples"."""
    printed: dict[str, Any] = {}
    for part in ("training", "evaluation"):
        printed[f"summary.data.{part}.vol_samples"] = card["summary"]["data"][part]["vol_samples"]
    for section, body in card["info"].items():
        for table in body.get("tables", []):
            for entry, value in table["entries"].items():
                key = f"{section}.{table['label']}.{entry}"
                assert key not in printed, f"the card prints {key!r} twice: its figures.toml key would be ambiguous"
                printed[key] = value
    return printed


def test_every_model_folder_is_checked() -> None:
    assert MODEL_NAMES, f"no model folders (*/manifest.toml) under {MODELS}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_follows_mhub_schema(name: str) -> None:
    card = _card(name)
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
              for error in validator.iter_errors(card)]
    assert not errors, f"{name}/meta.json breaks MHub's rules:\n" + "\n".join(errors)
    assert card["name"] == name, f"{name}/meta.json: name {card['name']!r} is not the folder name"
    section = jsonschema.Draft7Validator({"definitions": SCHEMA["definitions"], "$ref": "#/definitions/section"})
    for key, body in card["info"].items():  # sections MHub does not know (workflows, labels) are sections too
        assert not list(section.iter_errors(body)), f"{name}/meta.json: info.{key} is not a {{title, text}} section"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_segments_are_the_default_workflow_segments(name: str) -> None:
    workflow = yaml.safe_load((MODELS / name / "config" / "default.yml").read_text())
    segments = sorted(workflow["modules"]["DsegConverter"]["segments"], key=lambda segment: segment["label"])
    outputs = _card(name)["summary"]["outputs"]
    assert len(outputs) == 1, f"{name}/meta.json: one Segmentation output expected, found {len(outputs)}"
    assert outputs[0]["classes"] == [segment["name"] for segment in segments], (
        f"{name}/meta.json: outputs[0].classes differ from default.yml's DsegConverter segments (in label order)")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_figures_are_those_of_figures_toml(name: str) -> None:
    listed: dict[str, Any] = {}
    for figure in _figures(name).get("figure", []):
        key = figure.get("key", "")
        assert key and key not in listed, f"{name}/figures.toml: key {key!r} empty or listed twice"
        assert str(figure.get("source", "")).strip(), f"{name}/figures.toml: {key!r} has no source"
        listed[key] = figure.get("value")
    printed = _card_figures(_card(name))
    unlisted = sorted(set(printed) - set(listed))
    unused = sorted(set(listed) - set(printed))
    assert not unlisted, f"{name}/meta.json prints figures that figures.toml does not list: {unlisted}"
    assert not unused, f"{name}/figures.toml lists figures the card does not print: {unused}"
    differ = {key: (printed[key], listed[key]) for key in printed if printed[key] != listed[key]}
    assert not differ, f"{name}: card value != figures.toml value (card, figures.toml): {differ}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_names_the_manifest_zenodo_records(name: str) -> None:
    manifest = tomllib.loads((MODELS / name / "manifest.toml").read_text())
    weights = {str(entry["record"]) for entry in manifest["weights"]}
    data = {str(record) for record in _figures(name).get("data_records", [])}
    assert not weights & data, f"{name}/figures.toml: data_records {sorted(weights & data)} are weights records"
    card = _card(name)
    zenodo = _zenodo_record(card["details"].get("zenodo", ""))
    assert zenodo in weights, f"{name}/meta.json: details.zenodo names record {zenodo}, the manifest's are {weights}"
    named = {zenodo}
    for section, body in card["info"].items():
        for reference in body.get("references", []):
            record = _zenodo_record(reference["uri"])
            if record is None:
                continue
            assert record in weights | data, (
                f"{name}/meta.json: info.{section} references Zenodo record {record}, neither a weights record of "
                f"manifest.toml {sorted(weights)} nor a data record of figures.toml {sorted(data)}")
            named.add(record)
    assert weights <= named, f"{name}/meta.json never names weights record(s) {sorted(weights - named)}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_card_describes_every_workflow(name: str) -> None:
    workflows = _card(name)["info"].get("workflows", {}).get("text", "")
    for path in sorted((MODELS / name / "config").glob("*.yml")):
        assert path.name in workflows, f"{name}/meta.json: info.workflows.text does not describe {path.name}"
    if (MODELS / name / "config" / "as-published.yml").is_file():
        assert "as-published" in workflows, f"{name}/meta.json: info.workflows.text does not mention as-published"
