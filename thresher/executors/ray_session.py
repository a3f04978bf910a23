"""The executor setting and the Ray cluster session (``--executor``, ``--ray-address``).

Ray is an optional extra (``pip install 'thresher[ray]'``); this module imports it lazily, so
``thresher --help`` and the local executor never need it.

- :func:`use` / :func:`current` hold the executor chosen by ``--executor`` (stage commands,
  ``thresher run``) or ``executor:`` (recipes); :func:`thresher.executors.pick` asks
  :func:`current` for the executor object of a row-wise stage.
- :func:`session` connects to ``--ray-address`` (default ``$RAY_ADDRESS``) or starts a local
  cluster for the run, and shuts down only what it started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from thresher.choices import EXECUTORS
from thresher.errors import ThresherError

INSTALL_HINT = "--executor ray needs Ray: pip install 'thresher[ray]'"
_SETTINGS: dict[str, Any] = {"executor": "local", "address": None, "actors": None}


def use(executor: str = "local", address: str | None = None, actors: int | None = None) -> None:
    """Choose the executor for the stages run from now on in this process."""
    _SETTINGS.update(executor=check_executor(executor), address=address, actors=actors)


def current() -> str:
    """The executor chosen by :func:`use` (``local`` unless ``--executor ray`` was given)."""
    return _SETTINGS["executor"]


def ray_address() -> str | None:
    """The Ray cluster address chosen by :func:`use` (None: ``$RAY_ADDRESS`` or a local one)."""
    return _SETTINGS.get("address")


def ray_actors() -> int | None:
    """The actor-pool size chosen by :func:`use` (None: one per GPU, or half the CPUs)."""
    return _SETTINGS.get("actors")


@contextlib.contextmanager
def using(executor: str, address: str | None = None) -> Iterator[None]:
    """:func:`use` for the duration of a block (the recipe runner; on Ray, one session for
    the whole block), then restore the previous choice."""
    saved = dict(_SETTINGS)
    use(executor, address or saved.get("address"), saved.get("actors"))
    try:
        if executor == "ray":
            with session(_SETTINGS["address"]):
                yield
        else:
            yield
    finally:
        _SETTINGS.update(saved)


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ThresherError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ThresherError(INSTALL_HINT) from None
    return ray


def check_executor(name: str) -> str:
    """``name`` if it is a known executor (``local`` or ``ray``), else a one-line error."""
    if name not in EXECUTORS:
        raise ThresherError(f"executor: must be one of {', '.join(EXECUTORS)}, got {name!r}")
    if name == "ray":
        require_ray()
    return name


def quiet_data_context() -> None:
    """Ray's and Ray Data's logging and progress bars off (thresher shows its own)."""
    import logging

    import ray.data

    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "no available CPUs" while tasks run

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    with contextlib.suppress(AttributeError):
        ctx.enable_operator_progress_bars = False


@contextlib.contextmanager
def session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one.

    An already initialised Ray (a test fixture, a user's driver script) is used as it is and
    left running. A cluster this function started is shut down on exit.
    """
    ray = require_ray()
    if ray.is_initialized():
        quiet_data_context()
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise ThresherError(f"--ray-address {address}: cannot connect to a Ray cluster ({e})") from None
    try:
        quiet_data_context()
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    """Number of CPUs in the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    """Number of GPUs in the connected cluster."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
