"""Build slawatch: compile the SLA core's hot modules with mypyc, or install them pure.

`pip install .` (and `make install`, editable) runs this through setuptools. The modules of
`COMPILED` become C extensions next to their sources (Python imports an extension before a
`.py` of the same name); their sources stay the interpreted path. `flows/core/_built.py` records
what was compiled, from which source (SHA-256), or why nothing was: `flows.core.native` reads it
to fall back to the sources when one changed since (an edit in an editable checkout).

If mypyc or the C compiler fails, the install still succeeds, pure, and says why on stderr and
in `python -m flows.core.native`. `SLAWATCH_NO_COMPILE=1` skips compiling on purpose.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILT = ROOT / "flows" / "core" / "_built.py"

#: The hot path of `Engine.process` (profiled: conversation, clock, calendar, engine, the
#: families); the rest of the core (decode, policies, records, events) stays interpreted.
COMPILED = (
    "flows/core/calendar.py",
    "flows/core/clock.py",
    "flows/core/context.py",
    "flows/core/conversation.py",
    "flows/core/engine.py",
    "flows/core/families/__init__.py",
    "flows/core/families/assignment.py",
    "flows/core/families/handle.py",
    "flows/core/families/leads.py",
    "flows/core/families/recovery.py",
    "flows/core/families/replies.py",
    "flows/core/families/satisfaction.py",
    "flows/core/families/teams.py",
    "flows/core/families/updates.py",
    "flows/core/families/window.py",
)


def write_built(sources: dict[str, str], failed: str = "") -> None:
    """Write `flows/core/_built.py`: each compiled source's digest, or why none was compiled."""
    lines = [
        '"""What the last build compiled with mypyc (written by setup.py; not in git)."""',
        "",
        "from typing import Final",
        "",
        "#: Compiled sources (path from the repository root) and their SHA-256 at build time.",
        "SOURCES: Final[dict[str, str]] = {",
        *(f'    "{path}": "{digest}",' for path, digest in sources.items()),
        "}",
        "#: Why nothing was compiled (empty when the modules of SOURCES were).",
        f"FAILED: Final = {failed!r}",
        "",
    ]
    BUILT.write_text("\n".join(lines), encoding="utf-8")


def say(message: str) -> None:
    """Tell whoever runs the build (pip shows a build's stderr when it is verbose or fails)."""
    print(f"slawatch build: {message}", file=sys.stderr)


def pure(reason: str) -> list[Any]:
    """Give up compiling: record why, and build no extension."""
    if len(reason) > 300:
        reason = reason[:300] + "..."
    say(f"the SLA core is installed pure (interpreted), not compiled: {reason}")
    write_built({}, reason)
    return []


def extensions() -> list[Any]:
    """Return the mypyc extensions of `COMPILED`, or none when mypyc cannot generate them."""
    if os.environ.get("SLAWATCH_NO_COMPILE", "") not in ("", "0"):
        return pure("SLAWATCH_NO_COMPILE is set")
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - a build requirement only

        # Checked with pyproject's mypy settings (strict), as `make typecheck` does; the build
        # requirements hold the typed packages the core imports.
        exts = mypycify(
            list(COMPILED),
            opt_level="3",
            group_name="flows.core._native",
        )
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure means: install pure
        return pure(f"mypyc failed ({type(exc).__name__}: {exc})")
    write_built({path: hashlib.sha256((ROOT / path).read_bytes()).hexdigest() for path in COMPILED})
    return exts


class OptionalBuildExt(build_ext):
    """Build the extensions; if the C compiler fails, remove what was built and go on pure."""

    def run(self) -> None:
        """Compile every extension, or none of them."""
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, missing headers, ...
            for ext in self.extensions:
                for path in {self.get_ext_fullpath(ext.name), self._inplace_path(ext.name)}:
                    Path(path).unlink(missing_ok=True)
            pure(f"the C compiler failed ({type(exc).__name__}: {exc})")

    def _inplace_path(self, name: str) -> str:
        """Return where an in-place (editable) build puts the extension `name`."""
        suffix = self.get_ext_filename(name.rpartition(".")[2])
        return str(ROOT.joinpath(*name.split(".")[:-1], suffix))


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
