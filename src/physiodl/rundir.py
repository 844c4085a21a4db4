"""Run directories: written as a hidden ``.partial`` folder and renamed only when complete.

Earlier runs are never touched. An interrupted run stays as ``.<run id>.partial`` and
``--resume`` continues the newest one of its recipe, provided the resolved recipe is the same.
Under DDP, Lightning starts the other ranks by running the same command again; they find
the directory chosen by rank 0 in an environment variable and write nothing of their own.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physiodl.errors import PhysioDLError

RUN_DIR_ENV = "_PHYSIODL_RUN_DIR"
RESUME_ENV = "_PHYSIODL_RESUME"
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class RunDirectory:
    """Where one run writes; ``path`` is the staging folder until `finalise`."""

    path: Path
    final_path: Path
    resumed: bool = False

    @property
    def is_main_process(self) -> bool:
        """False in the extra DDP processes Lightning launches (they only train)."""
        return (
            int(os.environ.get("LOCAL_RANK", "0")) == 0
            and int(os.environ.get("NODE_RANK", "0")) == 0
        )

    def model_dir(self, name: str) -> Path:
        return self.path / "models" / name

    def tensorboard_dir(self, name: str) -> Path:
        return self.path / "tensorboard" / name

    def finalise(self) -> Path:
        """Move the complete run into place and return its final path."""
        os.replace(self.path, self.final_path)
        return self.final_path

    def release(self) -> None:
        """Forget this run in the environment (rank 0, when the run ends in any way)."""
        if self.is_main_process:
            os.environ.pop(RUN_DIR_ENV, None)
            os.environ.pop(RESUME_ENV, None)


def open_run_directory(
    runs_root: Path, recipe_name: str, resolved_recipe: str, *, resume: bool
) -> RunDirectory:
    """A fresh staging folder, the newest interrupted one (``resume``), or DDP rank 0's."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        staging = Path(inherited)
        return RunDirectory(staging, _final_path(staging), os.environ.get(RESUME_ENV) == "1")
    base = runs_root / recipe_name
    base.mkdir(parents=True, exist_ok=True)
    if resume:
        staging = _latest_partial(base)
        saved = (staging / "config.toml").read_text()
        if saved != resolved_recipe:
            raise PhysioDLError(
                f"cannot resume {staging}: it was started with a different recipe or overrides; "
                "run again without --resume to start a fresh run"
            )
    else:
        staging = _new_partial(base)
        (staging / "config.toml").write_text(resolved_recipe)
    os.environ[RUN_DIR_ENV] = str(staging)
    os.environ[RESUME_ENV] = "1" if resume else "0"
    return RunDirectory(staging, _final_path(staging), resumed=resume)


def _new_partial(base: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        run_id = stamp if attempt == 0 else f"{stamp}-{attempt}"
        staging = base / f".{run_id}{PARTIAL_SUFFIX}"
        if not staging.exists() and not (base / run_id).exists():
            staging.mkdir(parents=True)
            return staging
    raise PhysioDLError(f"could not create a new run directory in {base}")


def _latest_partial(base: Path) -> Path:
    partials = sorted(base.glob(f".*{PARTIAL_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    if not partials:
        raise PhysioDLError(
            f"nothing to resume: no interrupted run in {base}; run without --resume"
        )
    return partials[-1]


def _final_path(staging: Path) -> Path:
    return staging.parent / staging.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_plain))
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
