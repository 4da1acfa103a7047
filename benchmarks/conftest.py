"""Fixtures for the throughput benchmarks: a fixed slice of real MNIST and machine info."""

import os
import platform
from pathlib import Path

import numpy as np
import pytest

from digitnet import backend

N_EXAMPLES = 10_000  # one benchmark = one SGD pass over the first 10,000 training images


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """The first 10,000 real MNIST training images (host arrays)."""
    return mnist[0][:N_EXAMPLES]


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what decides the figures: CPU, BLAS and its threads, GPU."""
    machine_info["cpu_model"] = _cpu_name()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["numpy"] = np.__version__
    machine_info["env"] = {k: os.environ[k] for k in
                           ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                            "OMP_NUM_THREADS") if k in os.environ}
    try:
        from threadpoolctl import threadpool_info
        machine_info["blas"] = [{k: p.get(k) for k in ("internal_api", "version",
                                 "num_threads", "architecture", "threading_layer")}
                                for p in threadpool_info()]
    except ImportError:
        machine_info["blas"] = "threadpoolctl not installed"
    cupy, why = backend.cupy_or_reason()
    if cupy is None:
        machine_info["gpu"] = why
    else:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        machine_info["gpu"] = {"name": props["name"].decode(), "cupy": cupy.__version__,
                               "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                               "driver": cupy.cuda.runtime.driverGetVersion()}
    try:
        import torch
        machine_info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                                 "cuda": torch.cuda.is_available()}
    except ImportError:
        pass
