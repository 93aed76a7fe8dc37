"""The pinned Kafka and QuestDB jars: where they live and how `mvn` fetches them once.

`fetch_jars` asks Maven for Kafka's runtime classpath (with its log4j binding) and the QuestDB
server jar, into a folder named after the pinned versions under the cache; a marker file says
the fetch finished, so an interrupted download is redone, never half-used. `require_java` and
`require_maven` turn a missing tool into one sentence saying what to install.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flows.exceptions import StackError

KAFKA_VERSION = "4.4.0"
QUESTDB_VERSION = "9.3.4"
# The service configuration templates ship inside the package (`infra/` of the checkout).
INFRA_DIR = Path(__file__).resolve().parent / "infra"
MIN_JAVA_VERSION = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_JARS_MARKER = ".complete"
_DOWNLOADED_JAR = re.compile(r"Downloaded from \S+ \S+/([^/\s]+\.jar) \(([^)]*?)(?: at|\))")

Progress = Callable[[str], None]


def _silent(_message: str) -> None:
    """Drop a progress message."""


@dataclass(frozen=True, slots=True)
class Jars:
    """The fetched jars: Kafka's runtime classpath folder and the QuestDB jar.

    Attributes:
        root: The folder of the pinned versions' jars (see `jars_in`).
    """

    root: Path

    @property
    def kafka_dir(self) -> Path:
        """Folder holding Kafka's runtime jars and its log4j binding."""
        return self.root / "kafka"

    @property
    def kafka_classpath(self) -> str:
        """Java classpath wildcard for every jar in `kafka_dir`."""
        return f"{self.kafka_dir}/*"

    @property
    def questdb_jar(self) -> Path:
        """The QuestDB server jar (a Java module with its native libraries inside)."""
        return self.root / "questdb" / f"questdb-{QUESTDB_VERSION}.jar"

    @property
    def complete(self) -> bool:
        """Whether a previous fetch finished writing this folder."""
        return (self.root / _JARS_MARKER).is_file()


def jars_in(cache_dir: Path) -> Jars:
    """Return where the jars of the pinned versions live (or will live) under `cache_dir`."""
    return Jars(cache_dir / "jars" / f"kafka-{KAFKA_VERSION}_questdb-{QUESTDB_VERSION}")


# -- tools ------------------------------------------------------------------------------------


def require_java() -> str:
    """Return the path of a `java` of version 17 or newer.

    Raises:
        StackError: No such `java` is on PATH.
    """
    java = shutil.which("java")
    install = (
        f"install a Java {MIN_JAVA_VERSION}+ runtime (e.g. `apt-get install "
        f"openjdk-{MIN_JAVA_VERSION}-jre-headless` or `brew install openjdk@{MIN_JAVA_VERSION}`)"
        " and put `java` on PATH"
    )
    if java is None:
        message = f"The local stack needs Java {MIN_JAVA_VERSION} or newer: {install}."
        raise StackError(message)
    try:
        probe = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        message = f"`{java} -version` failed ({exc}): {install}."
        raise StackError(message) from exc
    found = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr + probe.stdout)
    if found is None:
        message = f"Cannot tell the version of {java}: {install}."
        raise StackError(message)
    major = int(found.group(1))
    if major == 1 and found.group(2):  # "1.8.0_x" style
        major = int(found.group(2))
    if major < MIN_JAVA_VERSION:
        message = (
            f"The local stack needs Java {MIN_JAVA_VERSION} or newer, found {major}: {install}."
        )
        raise StackError(message)
    return java


def require_maven() -> str:
    """Return the path of `mvn`.

    Raises:
        StackError: `mvn` is not on PATH.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        message = (
            "Fetching the Kafka and QuestDB jars needs Maven once: install it (e.g. "
            "`apt-get install maven` or `brew install maven`) and put `mvn` on PATH."
        )
        raise StackError(message)
    return mvn


def fetch_jars(cache_dir: Path, progress: Progress = _silent) -> Jars:
    """Copy the pinned Kafka, log4j and QuestDB jars from Maven Central into `cache_dir`.

    Does nothing when they are already there. Maven's own repository is kept under
    `cache_dir/m2` so the project never writes to `~/.m2`.

    Args:
        cache_dir: The cache folder.
        progress: Called with each line worth showing (one per downloaded jar).

    Returns:
        The fetched jars.

    Raises:
        StackError: `mvn` is missing or it failed.
    """
    jars = jars_in(cache_dir)
    if jars.complete:
        return jars
    mvn = require_maven()
    pom = INFRA_DIR / "pom.xml"
    if not pom.is_file():
        message = f"{pom} is missing: reinstall slawatch (the package ships its infra files)."
        raise StackError(message)
    jars.root.parent.mkdir(parents=True, exist_ok=True)
    staging = jars.root.parent / f".staging-{os.getpid()}-{secrets.token_hex(4)}"
    log = cache_dir / "mvn.log"
    progress(
        f"Fetching Apache Kafka {KAFKA_VERSION} and QuestDB {QUESTDB_VERSION} jars from Maven "
        f"Central into {jars.root} (first use only, about 75 MB)..."
    )
    started = time.monotonic()
    argv = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        DEPENDENCY_PLUGIN,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging / 'kafka'}",
    ]
    count = 0
    try:
        with log.open("w", encoding="utf-8") as out:
            out.write(" ".join(argv) + "\n")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=cache_dir,
            )
            assert proc.stdout is not None  # stdout=PIPE
            for line in proc.stdout:
                out.write(line)
                downloaded = _DOWNLOADED_JAR.search(line)
                if downloaded:
                    count += 1
                    progress(f"  [{count:>3}] {downloaded.group(1)} ({downloaded.group(2)})")
            returncode = proc.wait()
        if returncode != 0:
            message = (
                f"Maven could not fetch the stack's jars (exit {returncode}); see {log}\n"
                f"{_tail(log)}"
            )
            raise StackError(message)
        questdb_dir = staging / "questdb"
        questdb_dir.mkdir()
        (staging / "kafka" / jars.questdb_jar.name).rename(questdb_dir / jars.questdb_jar.name)
        (staging / _JARS_MARKER).write_text(f"{_utc_now()}\n", encoding="utf-8")
        if jars.complete:  # another process finished first
            shutil.rmtree(staging)
        else:
            shutil.rmtree(jars.root, ignore_errors=True)
            os.replace(staging, jars.root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in jars.root.rglob("*.jar"))
    progress(
        f"Fetched {sum(1 for _ in jars.root.rglob('*.jar'))} jars ({size / 1e6:.0f} MB) in "
        f"{time.monotonic() - started:.1f} s."
    )
    return jars


def _tail(path: Path, lines: int = 20) -> str:
    """Return the last `lines` lines of a log file ("" if it cannot be read), for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _utc_now() -> str:
    """Return the wall clock as ISO 8601 UTC to the second (log headers and `state.json`)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
