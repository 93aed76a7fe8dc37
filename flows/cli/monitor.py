"""`slawatch run`: the live monitor, with one option per setting."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from flows.exceptions import SlawatchError
from flows.settings import ENV_PREFIX, Settings

_SHORT_OPTIONS = {"recovery_dir": "-r", "snapshot_interval": "-s", "backup_interval": "-b"}


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per `Settings` field; its help names the environment variable.

    Every option defaults to None, so only options actually given override the environment and
    `.env`; `recovery_dir`, `snapshot_interval` and `backup_interval` also get Bytewax's short flags
    (-r, -s, -b).

    Args:
        command: The click command to decorate.

    Returns:
        The command with the options added, in the settings' field order.
    """
    for name, field in reversed(Settings.model_fields.items()):
        flag = "--" + name.replace("_", "-")
        decls = [flag, name] if name not in _SHORT_OPTIONS else [_SHORT_OPTIONS[name], flag, name]
        help_text = f"{field.description} [env {ENV_PREFIX}{name.upper()}]"
        command = click.option(*decls, default=None, metavar="VALUE", help=help_text)(command)
    return command


def cluster_from_environment(
    process_id: int | None, addresses: str | None, env: Mapping[str, str]
) -> tuple[int | None, str | None]:
    """Fill in the process id and addresses the way Bytewax's Kubernetes chart gives them.

    As `python -m bytewax.run` does: without `--process-id`, `BYTEWAX_POD_NAME` minus the
    `BYTEWAX_STATEFULSET_NAME-` prefix is the id (the pod's ordinal); without `--addresses`,
    `BYTEWAX_HOSTFILE_PATH` names a file with one `host:port` per line, in process-id order.

    Args:
        process_id: The `--process-id` option, if given.
        addresses: The `--addresses` option, if given.
        env: The environment.

    Returns:
        The process id and the `;`-separated addresses (each None when neither gives one).

    Raises:
        SlawatchError: the pod name does not end in an ordinal, or the host file is unreadable.
    """
    pod, statefulset = env.get("BYTEWAX_POD_NAME"), env.get("BYTEWAX_STATEFULSET_NAME")
    if process_id is None and pod and statefulset:
        ordinal = pod.removeprefix(f"{statefulset}-")
        if not ordinal.isdigit():
            msg = f"BYTEWAX_POD_NAME {pod!r} is not {statefulset}-<ordinal>"
            raise SlawatchError(msg)
        process_id = int(ordinal)
    hostfile = env.get("BYTEWAX_HOSTFILE_PATH")
    if process_id is not None and addresses is None and hostfile:
        try:
            lines = Path(hostfile).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            msg = f"cannot read BYTEWAX_HOSTFILE_PATH {hostfile}: {exc.strerror or exc}"
            raise SlawatchError(msg) from exc
        addresses = ";".join(line.strip() for line in lines if line.strip())
    return process_id, addresses


@click.command()
@_settings_options
@click.option(
    "-w",
    "--workers",
    "workers",
    type=int,
    default=1,
    show_default=True,
    help="Worker threads in this process.",
)
@click.option(
    "-i",
    "--process-id",
    "process_id",
    type=int,
    default=None,
    help=(
        "This process's index in a cluster (needs --addresses); in a Kubernetes StatefulSet, "
        "the pod's ordinal from BYTEWAX_POD_NAME and BYTEWAX_STATEFULSET_NAME."
    ),
)
@click.option(
    "-a",
    "--addresses",
    "addresses",
    default=None,
    help=(
        'host:port of every process of the cluster, ";"-separated, in process-id order '
        "(or one per line in the file BYTEWAX_HOSTFILE_PATH names)."
    ),
)
@click.option(
    "--from-stack",
    "from_stack",
    is_flag=True,
    help="Take the Kafka and QuestDB addresses from the running `slawatch stack`.",
)
@click.option(
    "--stack-dir",
    "stack_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State folder of the stack for --from-stack [env SLAWATCH_STACK_DIR].",
)
@click.option(
    "--create-topics",
    "create_topics",
    type=int,
    default=None,
    metavar="PARTITIONS",
    help="Create missing input and output topics with this many partitions first.",
)
def run(
    *,
    workers: int,
    process_id: int | None,
    addresses: str | None,
    from_stack: bool,
    stack_dir: Path | None,
    create_topics: int | None,
    **options: str | None,
) -> None:
    """Run the live monitor: Kafka in, Kafka and QuestDB out, with recovery (SPEC §7).

    Every setting is read from its SLAWATCH_* environment variable or a .env file, unless the
    option is given. With --recovery-dir, a missing recovery store is created, and a restart
    resumes from the last snapshot: no clock is lost and no stored row is doubled.
    """
    # Imported here so that `slawatch --help` does not load Bytewax and librdkafka.
    from flows.devstack import stack_overrides  # noqa: PLC0415
    from flows.monitor.runner import Cluster, run_monitor  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if "kafka_config" in given:
        try:
            given["kafka_config"] = json.loads(given["kafka_config"])
        except json.JSONDecodeError as exc:
            msg = f"--kafka-config must be a JSON object: {exc}"
            raise SlawatchError(msg) from exc
    if from_stack:
        given = {**stack_overrides(stack_dir), **given}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise SlawatchError(msg) from exc
    process_id, addresses = cluster_from_environment(process_id, addresses, os.environ)
    cluster = Cluster(
        workers,
        process_id,
        tuple(a for a in (addresses or "").split(";") if a),
    )
    run_monitor(settings, cluster, create_topics=create_topics)
