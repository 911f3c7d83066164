"""The on-disk cache of the offline models: one directory per recipe, built atomically, once.

Each build lands in ``<cache>/<name>-<fingerprint>/``; the fingerprint hashes the recipe, so a
changed recipe builds a new directory instead of reusing a stale one. Builders run under a lock
file, so processes that ask for the same model at once build it once.

Tested in ``tests/training/test_offline_models.py`` (cached builds, concurrent builders).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# Bump when a builder changes in a way its recipe does not capture.
RECIPE_VERSION = 1


def fingerprint(recipe: dict) -> str:
    blob = json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_build(cache_dir: Path, name: str, recipe: dict, build: Callable[[Path], None]) -> Path:
    """Build into a temp dir and rename it into place, so a reader sees a whole model or none."""
    cache_dir = Path(cache_dir).expanduser()
    key = f"{name}-{fingerprint({'name': name, 'version': RECIPE_VERSION, **recipe})}"
    final = cache_dir / key
    if (final / "config.json").is_file():
        return final
    with _locked(cache_dir / f".{key}.lock"):
        if (final / "config.json").is_file():  # another process finished it while we waited
            return final
        # Holding the lock, any leftover temp dir of this key is from a killed build.
        for stale in cache_dir.glob(f".{key}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=cache_dir))
        try:
            build(tmp)
            (tmp / "doppel_recipe.json").write_text(json.dumps({"name": name, **recipe}, indent=2))
            # mkdtemp (and safetensors) create owner-only modes; a shared cache must be readable.
            os.chmod(tmp, 0o755)
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
            if final.exists():  # a partial dir from some older, non-atomic tool
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
