"""Every CuPy name the package calls exists in the installed CuPy 14, with
a signature that takes the call (no device needed), the extras install a
CuPy that has them and can build kernels, and `digitnet info` and the
device probe say what CuPy builds kernels with.

What this cannot check: calls through a variable (an array's methods are
checked by name only, METHODS), calls whose callee has no introspectable
signature (UNCHECKED: CuPy's compiled functions and types), and anything
about values, speed or the device itself (benchmarks/gpu_check.sh)."""

import ast
import functools
import inspect
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest

import digitnet
from digitnet import backend, info
import cupy_codegen as cg

pytestmark = pytest.mark.gpucheck
PACKAGE = Path(digitnet.__file__).parent
ROOT = PACKAGE.parent.parent
ROOTS = {"xp", "cp", "cupy"}  # how the package names the array module (also self.xp, net.xp)
# Code that only ever runs on NumPy (kernels.py's NumPy chains).
NUMPY_ONLY = {"NumpyKernels"}
# Callees without an introspectable signature (compiled Cython): their names exist, the
# calls are not checked.
UNCHECKED = {"ElementwiseKernel", "cuda.Device", "cuda.get_current_stream",
             "cuda.nvrtc.getVersion", "cuda.runtime.getDeviceCount",
             "cuda.runtime.driverGetVersion", "cuda.runtime.getDeviceProperties"}
# cupy.ndarray methods and attributes the package uses on arrays (through variables).
METHODS = {"get", "set", "astype", "copy", "reshape", "T", "ravel", "sum", "max", "argmax",
           "item", "shape", "dtype", "strides", "flags", "ndim", "size", "__matmul__"}


def uses():
    """{dotted name under the array module: [(module, positional count, keywords)]}
    for every call (and every other use) in the package's source."""
    found = {}

    def chain(node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
            if isinstance(node, ast.Attribute) and node.attr == "xp":  # self.xp, net.xp
                return parts[::-1]
        return parts[::-1] if isinstance(node, ast.Name) and node.id in ROOTS else None

    class Visitor(ast.NodeVisitor):
        def __init__(self, module):
            self.module, self.classes, self.inside = module, [], set()

        def visit_ClassDef(self, node):
            if node.name not in NUMPY_ONLY:
                self.generic_visit(node)

        def visit_Call(self, node):
            name = chain(node.func)
            if name:
                self.inside.add(id(node.func))
                found.setdefault(".".join(name), []).append(
                    (self.module, len(node.args), tuple(k.arg for k in node.keywords)))
            self.generic_visit(node)

        def visit_Attribute(self, node):
            name = chain(node)
            if name and id(node) not in self.inside:
                found.setdefault(".".join(name), []).append((self.module, None, ()))
            if not name:  # xp.a.b is one use, not also xp.a
                self.generic_visit(node)

    for path in sorted(PACKAGE.glob("*.py")):
        Visitor(path.stem).visit(ast.parse(path.read_text()))
    return found


@pytest.fixture(scope="module")
def cupy():
    return cg.internals().cupy


def test_every_cupy_name_the_package_uses_exists_and_takes_the_call(cupy):
    """The conv layers' strided views, pooling, augment, bytes_to_float,
    the fast path, serve's predictions and checkpoint loading all reach
    CuPy through `xp.<name>`: each name resolves in the installed CuPy, and
    each call binds to its signature (a ufunc: its inputs, outputs and
    out=, dtype=, casting=)."""
    found = uses()
    assert {"lib.stride_tricks.as_strided", "astype", "concat", "take", "asarray",
            "ElementwiseKernel", "maximum", "where"} <= set(found)  # the scan sees them
    problems, unchecked = [], set()
    for name, calls in sorted(found.items()):
        try:
            target = functools.reduce(getattr, name.split("."), cupy)
        except AttributeError:
            problems.append(f"cupy.{name} does not exist ({sorted({m for m, _, _ in calls})})")
            continue
        for module, args, keywords in calls:
            if args is None:
                continue
            if isinstance(target, cupy.ufunc):
                if args > target.nin + target.nout or set(keywords) - {"out", "dtype", "casting"}:
                    problems.append(f"cupy.{name}: {args} arguments, {keywords} ({module})")
                continue
            try:
                signature = inspect.signature(target)
            except (TypeError, ValueError):
                unchecked.add(name)
                continue
            try:
                signature.bind(*[None] * args, **{k: None for k in keywords})
            except TypeError as exc:
                problems.append(f"cupy.{name}{signature}: {args} arguments, {keywords} "
                                f"({module}): {exc}")
    assert not problems, "\n".join(problems)
    assert unchecked == UNCHECKED, "callees whose calls cannot be checked changed"


def test_the_array_methods_the_package_uses_exist(cupy):
    missing = sorted(m for m in METHODS if not hasattr(cupy.ndarray, m))
    assert not missing


def test_the_gpu_extras_install_a_cupy_that_has_every_name_and_builds_kernels():
    """CuPy 13 lacks cupy.astype and cupy.concat (backend.bytes_to_float,
    augment.py), and CuPy 14 builds every kernel with NVRTC and the CUDA
    headers, which its [ctk] extra installs: so every GPU extra asks for
    CuPy >= 14 with [ctk], and the check's extra pins the minor it mirrors."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra in ("gpu", "gpu-cuda13", "gpu-cuda12"):
        (requirement,) = extras[extra]
        assert "[ctk]>=14" in requirement and requirement.startswith("cupy-cuda1"), extra
    assert extras["gpu"] == extras["gpu-cuda13"] == ["cupy-cuda13x[ctk]>=14"]
    assert extras["gpucheck"][0].startswith(f"cupy-cuda13x=={cg.PINNED}*")


def test_info_reports_nvrtc_and_the_cuda_headers(cupy):
    """Found here (the gpucheck extra installs them), with their versions."""
    report = info.cuda()
    assert report["nvrtc"] == "%d.%d" % cg.nvrtc_version()
    version, folder = report["headers"].split(" ", 1)
    assert folder.strip("()").endswith("include") and Path(folder.strip("()")).is_dir()
    assert version.split(".")[0] == report["nvrtc"].split(".")[0]
    lines = info.format_info({**info.info(), "cuda": report})
    assert f"nvrtc     {report['nvrtc']}" in lines
    assert f"cuda inc  {report['headers']}" in lines


def test_the_fallback_notice_names_what_cupy_cannot_find(monkeypatch):
    """A device is seen but the first kernel fails: the notice says which of
    NVRTC and the CUDA headers are missing and how to install them."""
    def no_compiler(*args, **kwargs):
        raise RuntimeError("CuPy failed to load libnvrtc.so.13")
    fake = types.ModuleType("cupy")
    fake.float32 = np.float32
    fake.arange = no_compiler
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backend, "cuda_toolkit",
                        lambda cupy: {"NVRTC": None, "the CUDA headers": None})
    backend.cupy_or_reason.cache_clear()
    try:
        notices = []
        assert backend.namespace("auto", notice=notices.append) is np
    finally:
        backend.cupy_or_reason.cache_clear()
    assert len(notices) == 1 and "\n" not in notices[0]
    assert ("a test kernel failed: RuntimeError: CuPy failed to load libnvrtc.so.13; NVRTC "
            "and the CUDA headers not found: pip install 'digitnet[gpu]'") in notices[0]


def fake_cupy_without_a_device(monkeypatch, driver):
    def no_device():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=no_device, driverGetVersion=lambda: driver))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend.cupy_or_reason.cache_clear()


@pytest.mark.parametrize("driver", [0, 12020])
def test_without_any_nvidia_driver_auto_falls_back_silently(driver, monkeypatch):
    """No driver at all (cudaDriverGetVersion says 0): no GPU to expect, so
    no notice, as without CuPy (a CPU machine sharing an environment with
    GPU machines); a driver too old for CuPy's CUDA: a notice saying so.
    `--device gpu` explains both."""
    fake_cupy_without_a_device(monkeypatch, driver)
    try:
        notices = []
        assert backend.namespace("auto", notice=notices.append) is np
        with pytest.raises(backend.BackendError) as error:
            backend.namespace("gpu")
    finally:
        backend.cupy_or_reason.cache_clear()
    if driver:
        assert len(notices) == 1 and "the NVIDIA driver may be too old" in notices[0]
    else:
        assert notices == []
        assert "there is no NVIDIA driver" in str(error.value)


def test_installed_cupy_on_a_machine_without_a_driver_changes_nothing(cupy):
    """The real CuPy here (CI's machine has no GPU): `--device auto` is
    NumPy, silently, as before CuPy was installed."""
    if cupy.cuda.runtime.driverGetVersion() != 0:
        pytest.skip("this machine has an NVIDIA driver")
    backend.cupy_or_reason.cache_clear()
    try:
        notices = []
        assert backend.namespace("auto", notice=notices.append) is np and notices == []
        assert "no NVIDIA driver" in backend.cupy_or_reason()[1]
    finally:
        backend.cupy_or_reason.cache_clear()
