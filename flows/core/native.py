"""The compiled SLA core: which modules mypyc compiles, whether they are in use, and the fallback.

`make install` (setup.py, its `COMPILED`) compiles the core's hot modules with mypyc into extension
modules next to their sources; Python imports an extension module before a `.py` of the same
name. The sources stay the pure, interpreted path, used when:

* nothing was compiled (no C compiler at install time: setup.py said so and went on);
* `SLAWATCH_PURE=1` is set (tests compare both paths on the same scenarios);
* a source changed since it was compiled (an edit in an editable checkout): the build records
  each source's SHA-256 in `flows/core/_built.py`, and one that differs makes the whole core
  pure, with a warning, since compiled and interpreted modules of one build must not mix.

This module is never compiled itself: it runs before the choice is made.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr  # noqa: PLC0414 - re-exported
else:

    def mypyc_attr(*_args: Any, **_kwargs: Any) -> Any:
        """Mark a class for mypyc (read at compile time only); interpreted, it changes nothing."""
        return lambda cls: cls


#: Set to `1` to import the pure `.py` sources even where compiled modules exist.
PURE_ENV: Final = "SLAWATCH_PURE"

_ROOT: Final = Path(__file__).resolve().parents[2]


def source_digest(path: Path) -> str:
    """Return the SHA-256 of a source file, as recorded at build time."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stale() -> list[str]:
    """Return the compiled modules whose source differs from the one compiled (none if unbuilt)."""
    try:
        # Written by setup.py when it compiled; absent in a checkout that was never built.
        built = importlib.import_module("flows.core._built")
    except ImportError:
        return []
    sources: dict[str, str] = built.SOURCES
    stale = []
    for rel, digest in sources.items():
        path = _ROOT / rel
        try:
            if source_digest(path) != digest:
                stale.append(rel)
        except OSError:
            stale.append(rel)
    return stale


def _use_sources() -> None:
    """Make the `flows.core` packages import `.py` sources only, never extension modules."""
    loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
    for folder in (Path(__file__).parent, Path(__file__).parent / "families"):
        sys.path_importer_cache[str(folder)] = importlib.machinery.FileFinder(str(folder), *loaders)


def choose() -> str:
    """Decide, once, before any compiled module is imported, which path this process runs.

    Returns:
        Why the pure path is used (`""` when compiled modules may be imported).
    """
    reason = ""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        reason = f"{PURE_ENV} is set"
    else:
        stale = _stale()
        if stale:
            reason = f"{', '.join(stale)} changed since it was compiled"
            warnings.warn(
                f"slawatch: {reason}; running the pure SLA core (`make install` compiles again)",
                RuntimeWarning,
                stacklevel=2,
            )
    if reason:
        _use_sources()
    return reason


def compiled() -> bool:
    """Return whether this process runs the compiled SLA core (its engine is an extension)."""
    import flows.core.engine  # noqa: PLC0415 - after `choose`

    loader = getattr(flows.core.engine, "__loader__", None)
    return isinstance(loader, importlib.machinery.ExtensionFileLoader)


def describe() -> str:
    """Return one line saying which SLA core this process runs and why (`make install` says it)."""
    import flows.core  # noqa: PLC0415

    if compiled():
        return "slawatch: the SLA core runs compiled (mypyc)"
    reason = flows.core.PURE_REASON
    if not reason:
        try:
            reason = importlib.import_module("flows.core._built").FAILED or "nothing compiled"
        except ImportError:
            reason = "never built (no flows/core/_built.py)"
    return f"slawatch: the SLA core runs pure (interpreted): {reason}"
