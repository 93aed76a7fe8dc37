"""The compiled SLA core (mypyc) and its pure sources give the same records and snapshots.

Each scenario runs in two subprocesses, one importing the compiled modules and one with
`SLAWATCH_PURE=1` (tests/pathkit.py), and their outputs are compared byte for byte. Skipped,
with the reason, where the install compiled nothing (no C compiler).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import flows.core
from flows.core import native

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

needs_compiled = pytest.mark.skipif(
    not native.compiled(), reason=native.describe() + " (see setup.py)"
)


def run_kit(*args: str | Path, pure: bool, hashseed: str | None = None) -> None:
    """Run `python -m tests.pathkit ARGS` on the compiled or the pure path."""
    env = {k: v for k, v in os.environ.items() if k not in (native.PURE_ENV, "PYTHONHASHSEED")}
    if pure:
        env[native.PURE_ENV] = "1"
    if hashseed is not None:
        env["PYTHONHASHSEED"] = hashseed
    subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "tests.pathkit", *map(str, args)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


def sections(path: Path) -> tuple[bytes, dict[str, list[bytes]]]:
    """Return a kit output's header line and its records by scenario."""
    header, *lines = path.read_bytes().splitlines()
    out: dict[str, list[bytes]] = {}
    current: list[bytes] = []
    for line in lines:
        if line.startswith(b"# "):
            current = out.setdefault(line[2:].decode(), [])
        else:
            current.append(line)
    return header, out


@needs_compiled
def test_pure_and_compiled_paths_publish_identical_records(tmp_path: Path) -> None:
    """The worked examples, 40 late-delivery scenarios and the bench's feed: the same bytes."""
    run_kit("records", tmp_path / "compiled", pure=False)
    run_kit("records", tmp_path / "pure", pure=True)
    c_header, compiled = sections(tmp_path / "compiled")
    p_header, pure = sections(tmp_path / "pure")
    assert (c_header, p_header) == (b"# compiled=1", b"# compiled=0")
    assert list(compiled) == list(pure)
    assert len(compiled) >= 60, "every scenario ran"
    assert sum(map(len, compiled.values())) > 10_000, "the scenarios produced their records"
    for name, records in compiled.items():
        assert records == pure[name], f"{name}: the compiled core published other records"


@needs_compiled
def test_snapshot_written_by_one_path_restores_in_the_other(tmp_path: Path) -> None:
    """Snapshots are the same bytes on both paths, and either path continues the other's."""
    for path, pure in (("c", False), ("p", True)):
        run_kit(
            "first", tmp_path / f"first-{path}", tmp_path / f"snap-{path}", pure=pure, hashseed="0"
        )
    # Same hash seed: the snapshots' sets are pickled in the same order on both paths.
    assert (tmp_path / "snap-c").read_bytes() == (tmp_path / "snap-p").read_bytes()
    assert sections(tmp_path / "first-c")[1] == sections(tmp_path / "first-p")[1]
    for written in ("c", "p"):
        for path, pure in (("c", False), ("p", True)):
            run_kit(
                "rest", tmp_path / f"rest-{written}{path}", tmp_path / f"snap-{written}", pure=pure
            )
    expected = sections(tmp_path / "rest-cc")[1]
    assert sum(map(len, expected.values())) > 100, "the restored engines went on emitting"
    for name in ("rest-cp", "rest-pc", "rest-pp"):
        assert sections(tmp_path / name)[1] == expected, f"{name} continued differently"


def probe(cwd: Path, pure: bool) -> list[str]:
    """Return `compiled()` and each built module's file, as a fresh process in `cwd` sees them."""
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    if pure:
        env[native.PURE_ENV] = "1"
    code = (
        "import importlib, flows.core.native as n, flows.core._built as b\n"
        "print(n.compiled())\n"
        "for rel in b.SOURCES:\n"
        "    name = rel.removesuffix('.py').removesuffix('/__init__').replace('/', '.')\n"
        "    print(importlib.import_module(name).__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return [*done.stdout.splitlines(), done.stderr]


@needs_compiled
def test_pure_switch_imports_every_compiled_module_from_its_source() -> None:
    """`SLAWATCH_PURE=1` loads the `.py` of every compiled module; without it, the extensions."""
    compiled, *files, _ = probe(ROOT, pure=False)
    assert compiled == "True"
    assert files and all(f.endswith(".so") for f in files), files
    compiled, *files, _ = probe(ROOT, pure=True)
    assert compiled == "False"
    assert len(files) == len(native_sources()) and all(f.endswith(".py") for f in files), files


def native_sources() -> dict[str, str]:
    """The sources the build compiled (flows/core/_built.py)."""
    from flows.core import _built  # type: ignore[attr-defined]  # noqa: PLC0415

    sources: dict[str, str] = _built.SOURCES
    return sources


@needs_compiled
def test_an_edited_source_runs_pure_with_a_warning(tmp_path: Path) -> None:
    """A source changed after `make install` is not shadowed by its stale compiled module."""
    shutil.copytree(
        ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__")
    )
    edited = tmp_path / "flows" / "core" / "clock.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    compiled, *files, stderr = probe(tmp_path, pure=False)
    assert compiled == "False"
    assert all(f.endswith(".py") and f.startswith(str(tmp_path)) for f in files), files
    assert "flows/core/clock.py changed since it was compiled" in stderr


def pure_on_purpose() -> str:
    """Why this install may legitimately run pure ("" if it should have compiled the core)."""
    if os.environ.get(native.PURE_ENV, "") not in ("", "0"):
        return f"{native.PURE_ENV} is set"
    if os.environ.get("SLAWATCH_NO_COMPILE", "") not in ("", "0"):
        return "SLAWATCH_NO_COMPILE is set"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    return ""


def test_an_install_with_a_c_compiler_runs_the_compiled_core() -> None:
    """Where a C compiler exists, `make install` compiled the core: no silent fallback."""
    reason = pure_on_purpose()
    if reason:
        pytest.skip(f"pure on purpose: {reason}")
    assert native.compiled(), native.describe()


def test_the_process_says_which_core_it_runs() -> None:
    """`describe` (printed by `make install`) names the path and why it is pure."""
    text = native.describe()
    if native.compiled():
        assert text == "slawatch: the SLA core runs compiled (mypyc)"
        assert not flows.core.PURE_REASON
    else:
        assert text.startswith("slawatch: the SLA core runs pure (interpreted): ")
