"""Instruction presets: named instructions a request selects with ``"preset": NAME``.

Presets live in data files (TOML or YAML, ``name = "instruction"``) so that operators can
tune instructions without touching code. The shipped ``rankserve/presets/default.toml`` is
always loaded; an operator file adds to it and overrides same-named entries.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from rankserve.errors import InvalidInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_PRESET = "default"


class PresetFileError(ValueError):
    """The presets file is missing, unparsable, or not a flat name -> instruction mapping."""


def _parse(text: str, source: str, suffix: str) -> dict[str, str]:
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data: Any = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # each parser has its own error class
        raise PresetFileError(f"cannot parse presets file {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise PresetFileError(f"presets file {source} must map preset names to instructions")
    out: dict[str, str] = {}
    for name, instruction in data.items():
        if not isinstance(instruction, str) or not instruction.strip():
            raise PresetFileError(f'preset {name!r} in {source} must be a non-empty string (name = "instruction")')
        out[str(name)] = instruction.strip()
    return out


def shipped_presets() -> dict[str, str]:
    """The presets bundled with the package."""
    text = resources.files("rankserve").joinpath("presets/default.toml").read_text(encoding="utf-8")
    return _parse(text, "rankserve/presets/default.toml", ".toml")


def load_presets(path: Path | None = None) -> dict[str, str]:
    """Shipped presets, updated with the operator's file when one is given."""
    presets = shipped_presets()
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PresetFileError(f"cannot read presets file {path}: {exc.strerror or exc}") from exc
        presets.update(_parse(text, str(path), path.suffix.lower()))
    return presets


def resolve_instruction(presets: dict[str, str], instruction: str | None, preset: str | None) -> str | None:
    """The instruction a request should use.

    A non-blank free-text ``instruction`` wins over ``preset``; an unknown preset is the
    caller's mistake (400) and the message lists what exists. With neither, the "default"
    preset applies, or the engine's own default instruction when there is none.
    """
    if preset is not None and preset not in presets:  # a typo is reported even when an instruction wins
        names = ", ".join(sorted(presets))
        raise InvalidInputError(f"unknown preset {preset!r}; available presets: {names}")
    if instruction is not None and instruction.strip():
        return instruction
    if preset is not None:
        return presets[preset]
    return presets.get(DEFAULT_PRESET)
