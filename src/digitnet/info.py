"""`digitnet info`: what this installation runs on, for bug reports and for
knowing why training is as fast (or slow) as it is."""

import importlib.metadata
import platform
import sys

import numpy as np

from . import __version__, backend, data, download


def blas():
    """{name, version, threads} of the BLAS NumPy calls, as well as can be told.

    threadpoolctl asks the loaded library itself (and knows its threads);
    without it, NumPy's build configuration names the BLAS it was built with.
    """
    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                return {"name": lib.get("internal_api"), "version": lib.get("version"),
                        "threads": lib.get("num_threads"),
                        "threading": lib.get("threading_layer")}
    except ImportError:
        pass
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"name": config.get("name"), "version": config.get("version"), "threads": None}
    except Exception:  # older NumPy, or a layout we do not know
        return {"name": None, "version": None, "threads": None}


def jit():
    """Numba's version and whether jit.py's loops (the fast path's update,
    conv and pooling) are compiled."""
    from . import jit as compiled
    if compiled.numba is not None:
        return {"numba": compiled.numba.__version__, "used": compiled.available()}
    try:  # installed but switched off before it loaded, or not installed
        return {"numba": importlib.metadata.version("numba"), "used": False}
    except importlib.metadata.PackageNotFoundError:
        return {"numba": None, "used": False}


def cuda():
    """{usable, device or reason, cupy version, nvrtc, headers}; imports CuPy
    only if it is there.  NVRTC and the CUDA headers are what CuPy builds
    every kernel with: reported even without a device, so a machine can be
    readied before it has one."""
    cupy, why = backend.cupy_or_reason()
    toolkit = _toolkit()
    if cupy is None:
        return {"usable": False, "reason": why, "cupy": _installed_cupy(), **toolkit}
    return {"usable": True, "device": backend.describe(cupy), "cupy": cupy.__version__,
            **toolkit}


def _toolkit():
    """{nvrtc, headers}: versions (headers: and folder), None where not
    found, or both None without an importable CuPy."""
    try:
        import cupy
    except Exception:
        return {"nvrtc": None, "headers": None}
    found = backend.cuda_toolkit(cupy)
    return {"nvrtc": found["NVRTC"], "headers": found["the CUDA headers"]}


def _installed_cupy():
    from importlib import metadata
    for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return None


def datasets(places):
    """{dataset: {file: "verified" | "wrong hash" | "missing"}} in each
    dataset's folder ({dataset: data.Place})."""
    words = {True: "verified", False: "wrong hash", None: "missing"}
    return {name: {f: words[ok] for f, ok in download.verified(name, place.path).items()}
            for name, place in places.items()}


def info(data_dir=None):
    """Everything `digitnet info` prints, as a dict (JSON-ready)."""
    places = {name: data.place(name, data_dir) for name in data.DATASETS}
    return {"digitnet": __version__,
            "python": f"{platform.python_version()} ({sys.executable})",
            "numpy": np.__version__,
            "blas": blas(),
            "jit": jit(),
            "cuda": cuda(),
            "data_dir": {name: {"path": str(p.path.resolve()), "from": p.why}
                         for name, p in places.items()},
            "datasets": datasets(places)}


def _numba_line(j):
    if not j["numba"]:
        return "not installed (the `fast` extra)"
    return f"{j['numba']}, " + ("the CPU loops compiled" if j["used"]
                                else "switched off (DIGITNET_JIT=0)")


def format_info(d):
    """The dict of `info` as the lines `digitnet info` prints."""
    b, c = d["blas"], d["cuda"]
    threads = f", {b['threads']} threads" if b.get("threads") else ""
    lines = [f"digitnet  {d['digitnet']}",
             f"python    {d['python']}",
             f"numpy     {d['numpy']}",
             f"blas      {b.get('name') or 'unknown'} {b.get('version') or ''}{threads}".rstrip(),
             "numba     " + _numba_line(d["jit"]),
             f"cupy      {c.get('cupy') or 'not installed'}",
             f"nvrtc     {c.get('nvrtc') or 'not found'}",
             f"cuda inc  {c.get('headers') or 'not found'}",
             "cuda      " + (f"usable: {c['device']}" if c["usable"] else f"not usable: {c['reason']}"),
             "data"]
    for name, files in d["datasets"].items():
        states = set(files.values())
        summary = (f"all {len(files)} files verified" if states == {"verified"} else
                   "not downloaded" if states == {"missing"} else
                   ", ".join(f"{f} {s}" for f, s in files.items()))
        where = d["data_dir"][name]
        lines.append(f"  {name:<14}{summary}")
        lines.append(f"  {'':<14}in {where['path']} ({where['from']})")
    return lines
