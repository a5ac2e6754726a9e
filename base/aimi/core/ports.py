"""Ports: the named, typed inputs and outputs a module declares, and how a workflow wires them to a case's artifacts.

A module lists `inputs` and `outputs` (port name -> `Port`) at the top of its class. Each port reads or writes one
artifact of the case, by name; a port's `default` is the artifact it uses unless the workflow step says otherwise:

    - {module: KeepLargestComponents, inputs: {labels: breast_fgt}, count: 2}

An output that `follows` an input is written back where that input was read from (an in-place edit), so the step
above also writes `breast_fgt`. `check_wiring` proves, before the first case, that every input is written by an
earlier step with a kind the port accepts; errors name the workflow file, the step and the valid ports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aimi.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """What an artifact holds; `merges`: every writer adds entries (a mapping) instead of replacing it."""

    name: str
    holds: str
    merges: bool = False

    def __str__(self) -> str:
        return self.name


SERIES = Kind("Series", "the case's source DICOM series by role: files, headers (no pixels), geometry")
IMAGES = Kind("Images", "one volume per role (SimpleITK image)")
LABELMAP = Kind("LabelMap", "one label map (SimpleITK uint8 image) on one grid")
SERIES_LABELMAPS = Kind("SeriesLabelMaps", "one label map per role, each on that role's series grid")
TRANSFORMS = Kind("Transforms", "per role: a point of the reference role -> the same point in that role (ITK)")
TRANSFORM = Kind("Transform", "one spatial transform: a point of the target space -> the same point in the source")
GRID = Kind("Grid", "an image whose grid (origin, spacing, direction, size) other steps resample onto")
SEGS = Kind("Segs", "one DICOM SEG dataset per role (pydicom Dataset)")
REPORTS = Kind("Reports", "one DICOM SR dataset per role (pydicom Dataset), each describing that role's SEG")
FILES = Kind("Files", "paths written under the output folder", merges=True)
PROVENANCE = Kind("Provenance", "weights id -> Zenodo record, file, md5, sha256, converter", merges=True)
MEASUREMENTS = Kind("Measurements", "step -> what it measured (numbers for the run report)", merges=True)
WARNINGS = Kind("Warnings", "what a step noticed that does not fail the case, for the run report", merges=True)

KINDS = (SERIES, IMAGES, LABELMAP, SERIES_LABELMAPS, TRANSFORMS, TRANSFORM, GRID, SEGS, REPORTS, FILES, PROVENANCE,
         MEASUREMENTS, WARNINGS)


@dataclass(frozen=True)
class Port:
    """One input or output: the kinds it accepts, what it is for, and the artifact it uses by default.

    `optional` (inputs): the module runs without it when the default artifact is not written; a name wired
    explicitly must always exist. `follows` (outputs): by default written where that input port was read from.
    """

    kinds: Kind | tuple[Kind, ...]
    about: str
    default: str
    optional: bool = False
    follows: str = ""

    @property
    def accepts(self) -> tuple[Kind, ...]:
        return self.kinds if isinstance(self.kinds, tuple) else (self.kinds,)

    @property
    def kind_names(self) -> str:
        return " or ".join(k.name for k in self.accepts)


#: The ports of a step that edits one label map: read from `main` unless wired, written back where it was read.
LABELS_TO_EDIT = Port(LABELMAP, "the label map to edit", "main")
EDITED_LABELS = Port(LABELMAP, "the edited label map; by default written back in place", "main", follows="labels")
MEASURED = Port(MEASUREMENTS, "what the step measured, for the run report", "measurements")
WARNED = Port(WARNINGS, "what the step noticed that does not fail the case, for the run report", "warnings")


def ports(**declared: Port) -> Mapping[str, Port]:
    """A module's inputs or outputs, in declaration order, read-only."""
    return MappingProxyType(declared)


@dataclass(frozen=True)
class Wiring:
    """A step's port -> artifact name, inputs and outputs."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)


def default_wiring(inputs: Mapping[str, Port], outputs: Mapping[str, Port],
                   given: Wiring | None = None) -> Wiring:
    """The given names over each port's default; an output that follows an input goes where that input came from."""
    given = given or Wiring()
    wired_in = {port: given.inputs.get(port, spec.default) for port, spec in inputs.items()}
    wired_out = {port: given.outputs.get(port) or (wired_in[spec.follows] if spec.follows else spec.default)
                 for port, spec in outputs.items()}
    return Wiring(wired_in, wired_out)


@dataclass(frozen=True)
class StepPorts:
    """What `check_wiring` needs of a step: where it is in the workflow, its ports and its wiring as given."""

    where: str
    label: str
    inputs: Mapping[str, Port]
    outputs: Mapping[str, Port]
    given: Wiring


def parse_wiring(raw: Any, ports: Mapping[str, Port], direction: str, where: str) -> dict[str, str]:
    """A step's `inputs:` or `outputs:` mapping, port -> artifact name, checked against the module's ports."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise ConfigError(f"{where}: {direction} is a mapping of port name to artifact name, got {raw!r}")
    for port in raw:
        if port not in ports:
            valid = ", ".join(ports) or "(none)"
            raise ConfigError(f"{where}: unknown {direction[:-1]} port {port!r}; valid {direction}: {valid}")
    return dict(raw)


def check_wiring(path: Any, steps: Sequence[StepPorts]) -> tuple[list[Wiring], dict[str, Kind]]:
    """Each step's resolved wiring and every artifact's kind; ConfigError at the first input nobody wrote before it,
    or whose kind its port does not accept, or an output that would change an artifact's kind or replace one that no
    step has read since it was written (two models writing `main`: the first one's work would be lost)."""
    wirings = [default_wiring(step.inputs, step.outputs, step.given) for step in steps]
    written: dict[str, tuple[Kind, str]] = {}
    unread: dict[str, str] = {}  # artifact -> the step that wrote it, while no step has read it since
    for index, (step, wiring) in enumerate(zip(steps, wirings, strict=True)):
        where = f"{path}: {step.where} ({step.label})"
        for port, name in wiring.inputs.items():
            spec = step.inputs[port]
            if name not in written:
                if spec.optional and port not in step.given.inputs:
                    continue
                have = ", ".join(f"{n} ({k})" for n, (k, _) in written.items()) or "nothing"
                later = [f"{s.where} ({s.label})" for s, w in zip(steps[index + 1:], wirings[index + 1:], strict=True)
                         if name in w.outputs.values()]
                after = f"; {later[0]} writes it later: move this step after that one" if later else ""
                raise ConfigError(f"{where}: input {port!r} ({spec.kind_names}) reads {name!r}, which no earlier step "
                                  f"writes{after}; written before it: {have}; valid inputs: {', '.join(step.inputs)}")
            kind, writer = written[name]
            if kind not in spec.accepts:
                raise ConfigError(f"{where}: input {port!r} accepts {spec.kind_names}, but {name!r} holds {kind} "
                                  f"(written by {writer}); valid inputs: {', '.join(step.inputs)}")
            unread.pop(name, None)
        for port, name in wiring.outputs.items():
            kind = step.outputs[port].accepts[0]
            if name in written and written[name][0] is not kind:
                raise ConfigError(f"{where}: output {port!r} ({kind}) would overwrite {name!r}, which holds "
                                  f"{written[name][0]} (written by {written[name][1]}); wire it to another name")
            if name in unread:
                raise ConfigError(f"{where}: output {port!r} ({kind}) would replace {name!r}, written by "
                                  f"{unread[name]} and read by no step since; wire one of them to another name "
                                  f"(outputs: {{{port}: <name>}})")
            written[name] = (kind, step.label)
            if not kind.merges:
                unread[name] = step.label
    return wirings, {name: kind for name, (kind, _) in written.items()}


def ports_table(modules: Sequence[type]) -> str:
    """Markdown: every module's ports, kinds, default artifacts and what each is for (README, `aimi models --ports`)."""
    lines = ["| module | port | kind | default artifact | what |", "|---|---|---|---|---|"]
    for module in modules:
        for direction, ports in (("in", module.inputs), ("out", module.outputs)):
            for port, spec in ports.items():
                default = f"same as `{spec.follows}`" if spec.follows else f"`{spec.default}`"
                about = spec.about + (" (optional)" if spec.optional else "")
                lines.append(f"| {module.__name__} | {direction}: `{port}` | {spec.kind_names} | {default} | {about} |")
    return "\n".join(lines)
