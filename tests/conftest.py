import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Commands may cache data under the user's home; keep tests out of the real one."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Path:
    """A directory holding a copy of the repository's ``sample_data/``: tests never write
    into the repository, and a preparation cache lands beside the data it reads."""
    home = tmp_path_factory.mktemp("samples")
    ignore = shutil.ignore_patterns(".dcn-cache")
    shutil.copytree(ROOT / "sample_data", home / "sample_data", ignore=ignore)
    return home


def pytest_configure(config):
    """Two logical CPU devices, so that MirroredStrategy can be tested without two GPUs.

    This must happen before TensorFlow starts its runtime; one device stays the
    default, so other tests run as they would on one CPU.
    """
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller: it runs no test, its workers do
    from dcn_cli import backend

    backend.load()
    import tensorflow as tf

    # The suite runs in two processes on two cores (pytest-xdist): each computes on one
    # thread, instead of both fighting over both cores.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
