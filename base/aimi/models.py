"""The model folders under `models/`: manifest (weights), workflows (config/*.yml) and model card (meta.json)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimi.errors import ConfigError
from aimi.manifest import Manifest, load_manifest


def models_root() -> Path:
    """`$AIMI_MODELS`, else the repository's `models/` beside `base/`, else `/app/models` in images."""
    if os.environ.get("AIMI_MODELS"):
        return Path(os.environ["AIMI_MODELS"])
    checkout = Path(__file__).resolve().parents[2] / "models"
    return checkout if checkout.is_dir() else Path("/app/models")


@dataclass(frozen=True)
class ModelFolder:
    name: str
    path: Path
    manifest: Manifest

    @property
    def meta(self) -> dict[str, Any]:
        """The model card; a missing or unreadable one is a ConfigError naming the file."""
        path = self.path / "meta.json"
        try:
            return json.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the model card: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON: {error}") from None

    def workflows(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "config").glob("*.yml"))

    def workflow_path(self, workflow: str) -> Path:
        candidate = Path(workflow)
        if candidate.suffix in (".yml", ".yaml") and candidate.is_file():
            return candidate
        path = self.path / "config" / f"{workflow}.yml"
        if not path.is_file():
            valid = ", ".join(self.workflows())
            raise ConfigError(f"model {self.name}: no workflow {workflow!r}; valid workflows: {valid}")
        return path


def available_models(root: Path | None = None) -> list[str]:
    root = root or models_root()
    return sorted(p.parent.name for p in root.glob("*/manifest.toml"))


def load_model(name: str, root: Path | None = None) -> ModelFolder:
    root = root or models_root()
    path = root / name
    if not (path / "manifest.toml").is_file():
        valid = ", ".join(available_models(root)) or f"none found under {root}"
        raise ConfigError(f"unknown model {name!r}; valid models: {valid}")
    return ModelFolder(name, path, load_manifest(path / "manifest.toml"))  # a ManifestError is a ConfigError
