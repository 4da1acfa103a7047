import platform
import subprocess
import sys
import types

import numpy as np
import pytest

from digitnet import backend


@pytest.fixture(autouse=True)
def fresh_probe():
    """cupy_or_reason runs once per process; each test here probes anew."""
    backend.cupy_or_reason.cache_clear()
    yield
    backend.cupy_or_reason.cache_clear()


def fake_cupy(monkeypatch, count=1, arange=np.arange):
    """A module named cupy, computing with NumPy, that sees `count` devices;
    `cupy.calls` lists the probe's kernel launches (its calls of arange)."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "0.0+fake"
    cupy.float32 = np.float32
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: count))
    cupy.calls = []

    def launch(*args, **kwargs):
        cupy.calls.append("arange")
        return arange(*args, **kwargs)
    cupy.arange = launch
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def fallback(capsys):
    """namespace("auto") and the notices it gave; nothing may be printed."""
    notices = []
    xp = backend.namespace("auto", notice=notices.append)
    assert capsys.readouterr() == ("", "")
    return xp, notices


def assert_unusable(capsys, detail):
    xp, notices = fallback(capsys)
    assert xp is np
    assert len(notices) == 1 and "\n" not in notices[0]
    assert notices[0].startswith("digitnet: notice: CuPy is installed but not usable (")
    assert notices[0].endswith("; training on the CPU with NumPy")
    assert detail in notices[0]
    with pytest.raises(backend.BackendError, match="--device gpu is not available: CuPy is "
                                                   "installed but not usable") as error:
        backend.namespace("gpu")
    assert detail in str(error.value) and "\n" not in str(error.value)


def test_cpu_is_numpy():
    assert backend.namespace("cpu") is np


def test_auto_falls_back_to_numpy_without_a_gpu():
    cupy, _ = backend.cupy_or_reason()
    assert backend.namespace("auto") is (cupy if cupy is not None else np)


def test_gpu_without_cupy_is_a_clear_error():
    cupy, _ = backend.cupy_or_reason()
    if cupy is not None:
        pytest.skip("a GPU is present here")
    with pytest.raises(backend.BackendError, match="--device gpu is not available"):
        backend.namespace("gpu")


def test_a_usable_cupy_is_chosen_and_probed_once(monkeypatch, capsys):
    cupy = fake_cupy(monkeypatch)
    assert fallback(capsys) == (cupy, [])
    assert backend.namespace("gpu") is cupy
    assert backend.cupy_or_reason() == (cupy, None)
    assert cupy.calls == ["arange"]  # the probe ran, and only once


def test_without_cupy_auto_falls_back_silently(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy: ModuleNotFoundError
    assert fallback(capsys) == (np, [])
    with pytest.raises(backend.BackendError, match="CuPy is not installed"):
        backend.namespace("gpu")


def test_cupy_without_a_device(monkeypatch, capsys):
    cupy = fake_cupy(monkeypatch, count=0)
    assert_unusable(capsys, "no CUDA device found")
    assert cupy.calls == []


def test_cupy_whose_device_count_fails(monkeypatch, capsys):
    cupy = fake_cupy(monkeypatch)

    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    cupy.cuda.runtime.getDeviceCount = no_driver
    assert_unusable(capsys, "getDeviceCount failed: RuntimeError: cudaErrorInsufficientDriver")


def test_cupy_whose_kernels_fail(monkeypatch, capsys):
    """A device is seen, but the runtime compiler is missing: the first kernel fails."""
    def arange(*args, **kwargs):
        raise RuntimeError("CuPy failed to load libnvrtc.so.13: OSError: libnvrtc.so.13: "
                           "cannot open shared object file\n\nInstall the CUDA Toolkit ...")
    fake_cupy(monkeypatch, arange=arange)
    assert_unusable(capsys, "a test kernel failed: RuntimeError: CuPy failed to load libnvrtc")


class NoCublas(np.ndarray):
    def __matmul__(self, other):
        raise ImportError("libcublas.so.13: cannot open shared object file")


def test_cupy_whose_matrix_product_fails(monkeypatch, capsys):
    """Elementwise kernels run, but cuBLAS is missing: the first matmul fails."""
    fake_cupy(monkeypatch, arange=lambda *a, **k: np.arange(*a, **k).view(NoCublas))
    assert_unusable(capsys, "a test matrix product failed: ImportError: libcublas.so.13")


@pytest.mark.parametrize("body, detail", [
    ('raise ImportError("CuPy failed to load libcudart.so.13\\n\\nmore advice")',
     "import failed: ImportError: CuPy failed to load libcudart.so.13)"),
    ("import digitnet_test_no_such_dependency",  # e.g. a CuPy missing fastrlock
     "import failed: ModuleNotFoundError: No module named 'digitnet_test_no_such_dependency'"),
], ids=["cuda-library", "dependency"])
def test_cupy_that_fails_to_import(monkeypatch, capsys, tmp_path, body, detail):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(body + "\n")
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.syspath_prepend(tmp_path)
    assert_unusable(capsys, detail)


def test_no_notice_outside_auto(monkeypatch):
    fake_cupy(monkeypatch, count=0)
    notices = []
    assert backend.namespace("cpu", notice=notices.append) is np
    assert backend.namespace(np, notice=notices.append) is np
    assert notices == []


def test_unknown_device_and_dtype():
    with pytest.raises(backend.BackendError, match="unknown device"):
        backend.namespace("tpu")
    with pytest.raises(backend.BackendError, match="unsupported dtype"):
        backend.dtype_of(np, "float16")


def test_dtypes_and_module_passthrough(xp):
    assert backend.namespace(xp) is xp
    assert backend.dtype_of(xp, "float32") == xp.float32
    assert backend.dtype_of(xp, "float64") == xp.float64


def test_freed_memory_is_kept_on_numpy_under_glibc_only():
    """The plain engine's page-fault lever (backend.keep_freed_memory)
    applies where glibc's mallopt exists, and never on other namespaces."""
    from conftest import load_namespace
    assert backend.keep_freed_memory(np) is (platform.libc_ver()[0] == "glibc")
    assert backend.keep_freed_memory(load_namespace("strict")) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
@pytest.mark.parametrize("mb", [8, 48])
def test_kept_memory_spares_the_page_faults_of_a_temporary_allocated_again(mb):
    """A temporary of `mb` MB (the record recipe's im2col matrix is 42)
    allocated, written and freed again and again: in a fresh process the
    kernel hands over fresh zeroed pages each time (page faults), and
    after keep_freed_memory the same memory comes back with none."""
    code = ("import resource, sys, numpy as np\n"
            "from digitnet import backend\n"
            "if sys.argv[1] == 'kept': backend.keep_freed_memory(np)\n"
            "np.ones((64 << 20) // 8)  # a large heap, as a loaded dataset leaves\n"
            f"n = ({mb} << 20) // 4\n"
            "np.ones(n, dtype=np.float32)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(10): np.ones(n, dtype=np.float32)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    faults = {how: int(subprocess.run([sys.executable, "-c", code, how], capture_output=True,
                                      text=True, check=True).stdout)
              for how in ("kept", "fresh")}
    assert faults["kept"] < 50, faults
    if mb > 32:  # below glibc's default threshold growth may keep them without the lever
        assert faults["fresh"] > 10 * 50, faults
