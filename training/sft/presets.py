"""Training presets: the LoRA and optimizer settings of a run, read from TOML.

A preset is a TOML file of ``TrainConfig`` keys; the shipped ones live in ``training/sft/presets/``
(each documents why its values are what they are) and ``[train] presets_dir`` may add more. A
preset can start from another with ``extends = "name"``. ``--preset`` takes a name or a path to
a ``.toml`` file; command-line options and ``--set key=value`` override single keys.

Imports nothing heavy: ``doppel train presets`` lists them without loading torch.

Tested in ``tests/training/sft/test_trainer.py`` (loading, ``extends``, overrides, validation) and
``tests/training/cli/test_train.py`` (``doppel train presets``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from doppel.errors import ConfigError

BUILTIN_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "qwen2.5-7b"
_MAX_EXTENDS = 8

Positive = Annotated[float, Field(gt=0)]


class TrainConfig(BaseModel):
    """Everything a training run needs besides its data and output directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    description: str = ""
    # A Hugging Face model id, a local model directory, or an offline model name (tiny, smollm2).
    base_model: str
    # "4bit" is QLoRA: the base in NF4 through bitsandbytes (CUDA only).
    quantization: Literal["none", "4bit"] = "none"
    rank: Annotated[int, Field(ge=1, le=1024)] = 16
    alpha: Positive = 32.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    # "all-linear" or a list of module names (q_proj, v_proj, ...).
    target_modules: str | list[str] = "all-linear"
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-4
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    # Fraction of the steps spent warming up.
    warmup: Annotated[float, Field(ge=0, lt=1)] = 0.03
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    epochs: Positive = 2.0
    # > 0: stop after this many optimizer steps, whatever ``epochs`` says.
    max_steps: Annotated[int, Field(ge=0)] = 0
    batch_size: Annotated[int, Field(ge=1)] = 16
    grad_accum: Annotated[int, Field(ge=1)] = 1
    max_length: Annotated[int, Field(ge=16)] = 2048
    save_steps: Annotated[int, Field(ge=1)] = 200
    log_steps: Annotated[int, Field(ge=1)] = 10
    gradient_checkpointing: bool = False
    # On a CPU with native bf16 (AVX512-BF16, AMX): bf16 autocast over float32 weights, ~1.5x
    # faster; other CPUs and GPUs ignore it (GPUs train in bf16/fp16 anyway).
    cpu_bf16: bool = False
    # "last": loss on the sample's final reply only (each earlier reply has its own sample, so
    # training on all of them would count it several times); "all": every assistant turn.
    train_on: Literal["last", "all"] = "last"
    # False pads each batch to its longest sample (only for comparison: see benchmarks/train.py).
    packing: bool = True
    seed: int = 42

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            if value == "all-linear":
                return value
            value = [part.strip() for part in value.split(",")]
        if not value or any(not part or not part.replace("_", "").replace(".", "").isalnum() for part in value):
            raise ValueError("use \"all-linear\" or module names such as [\"q_proj\", \"v_proj\"]")
        return list(value)

    def summary(self) -> str:
        targets = self.target_modules if isinstance(self.target_modules, str) else ",".join(self.target_modules)
        length = f"{self.max_steps} steps" if self.max_steps else f"{self.epochs:g} epochs"
        quant = ", 4-bit base" if self.quantization == "4bit" else ""
        return (f"{self.base_model}{quant}: LoRA r={self.rank} alpha={self.alpha:g} dropout={self.dropout:g} on "
                f"{targets}; lr {self.learning_rate:g} {self.scheduler}, {length}, batch {self.batch_size}"
                f"x{self.grad_accum}, max length {self.max_length}")


def _one_line(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "preset"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}' (allowed: {', '.join(TrainConfig.model_fields)})"
    if first["type"] == "missing":
        return f"{source}: key '{key}' is required"
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{source}: {key} = {shown}: {first['msg'].removeprefix('Value error, ')}"


def preset_dirs(extra: str | Path | None = None) -> list[Path]:
    """Where presets are looked up by name: ``extra`` (``[train] presets_dir``) first, then the shipped ones."""
    dirs = [Path(extra).expanduser()] if extra else []
    return [*dirs, BUILTIN_DIR]


def find_preset(name: str, extra_dir: str | Path | None = None) -> Path:
    """The TOML file of preset ``name`` (or ``name`` itself when it is a path to a .toml file)."""
    if name.endswith(".toml") or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    for folder in preset_dirs(extra_dir):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    known = ", ".join(sorted(available_presets(extra_dir)))
    raise ConfigError(f"unknown preset {name!r}; available: {known}")


def available_presets(extra_dir: str | Path | None = None) -> dict[str, Path]:
    """Preset name -> file; a preset in ``extra_dir`` hides a shipped one of the same name."""
    found: dict[str, Path] = {}
    for folder in reversed(preset_dirs(extra_dir)):
        if folder.is_dir():
            found.update({path.stem: path for path in sorted(folder.glob("*.toml"))})
    return found


def _read_table(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"preset {path}: cannot read it ({exc})") from None


def _resolved_table(name: str, extra_dir: str | Path | None) -> dict:
    chain: list[Path] = []
    table: dict = {}
    current: str | None = name
    while current is not None:
        path = find_preset(current, extra_dir)
        if path in chain or len(chain) >= _MAX_EXTENDS:
            raise ConfigError(f"preset {name!r}: 'extends' loops ({' -> '.join(p.stem for p in [*chain, path])})")
        chain.append(path)
        layer = _read_table(path)
        current = layer.pop("extends", None)
        table = {**layer, **table}  # the child's keys win over the parent's
    return table


def load_preset(name: str, extra_dir: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Preset ``name`` (following ``extends``) with ``overrides`` applied, validated."""
    table = _resolved_table(name, extra_dir)
    table.setdefault("name", Path(name).stem)
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig(**table)
    except ValidationError as exc:
        source = f"preset {name}" + (" (with overrides)" if overrides else "")
        raise ConfigError(_one_line(exc, source)) from None


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict:
    """``--set key=value`` pairs as a dict; values are read as TOML (``1e-4``, ``true``, ``["q_proj"]``)
    and fall back to plain strings."""
    result: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value")
        if key not in TrainConfig.model_fields:
            raise ConfigError(f"--set {key}: unknown key (allowed: {', '.join(TrainConfig.model_fields)})")
        try:
            result[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            result[key] = raw.strip()
    return result
