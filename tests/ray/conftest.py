"""One local Ray cluster (2 CPUs) for the whole test session; the Ray tests share it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """``ray.init(num_cpus=2)`` once; yields the cluster's address for subprocess drivers."""
    ray = pytest.importorskip("ray")
    from thresher.executors.ray_session import quiet_data_context

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    quiet_data_context()
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture
def on_ray(ray_cluster):
    """Stages run on the shared cluster for this test, locally again afterwards."""
    from thresher.executors import ray_session

    ray_session.use("ray")
    yield ray_cluster
    ray_session.use("local")


@pytest.fixture(autouse=True)
def _local_again():
    """Whatever a test chose, the next test (in this process) starts on the local executor."""
    yield
    from thresher.executors import ray_session

    ray_session.use("local")
