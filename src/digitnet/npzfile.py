""".npz files read array by array, each only after its header was checked.

An .npz is a zip archive of .npy members; each member starts with a short
header (shape, dtype) before its data.  np.load reads an array's data as
soon as it is asked for it, allocating whatever the header claims, and a
zip member of zeros compresses about 1000 to 1: a 1.2 MB file could make
a reader allocate 1.2 GB before anything compared the shapes with the
network the file declares.  Here every header is read first; an array is
read only when the caller has said which shape and kind it must have (a
parameter) or it is small (a name, a list of sizes, a run's JSON state),
and only when its member holds exactly the bytes its header announces.
Nothing is ever unpickled.
"""

import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy

SMALL = 1 << 20  # bytes: the most a descriptive array (not a parameter) may hold


class Unreadable(ValueError):
    """The file is not a readable .npz, or an array in it is not what it must be."""


def _header(zf, info):
    """(shape, dtype, bytes before the data) of one .npy member."""
    with zf.open(info) as f:
        version = npy.read_magic(f)
        read = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read is None:
            raise Unreadable(f"{info.filename}: .npy format version {version} is not read here")
        shape, _, dtype = read(f)
        return tuple(shape), dtype, f.tell()


class Archive:
    """The arrays of an .npz file: `headers[key]` is (shape, dtype) for
    every array; `small(key)` and `parameter(key, shape)` read one."""

    def __init__(self, path):
        self.path = path
        self.zf = zipfile.ZipFile(path)
        self.members, self.headers = {}, {}
        try:
            for info in self.zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue  # np.savez writes only .npy members; others are not ours
                key = info.filename[:-4]
                shape, dtype, offset = _header(self.zf, info)
                if dtype.hasobject:
                    raise Unreadable("holds pickled objects")
                self.members[key] = (info, offset)
                self.headers[key] = (shape, dtype)
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def __contains__(self, key):
        return key in self.headers

    def nbytes(self, key):
        shape, dtype = self.headers[key]
        return int(np.prod(shape, dtype=object)) * dtype.itemsize

    def _read(self, key):
        info, offset = self.members[key]
        if offset + self.nbytes(key) != info.file_size:
            raise Unreadable(f"{key} holds {info.file_size - offset} bytes of data, but its "
                             f"header announces {self.nbytes(key)}")
        with self.zf.open(info) as f:
            return npy.read_array(f, allow_pickle=False)

    def small(self, key, limit=SMALL):
        """A descriptive array, read only when it holds at most `limit` bytes
        (KeyError when absent, as a dict would)."""
        if key not in self.headers:
            raise KeyError(key)
        if self.nbytes(key) > limit:
            raise Unreadable(f"{key} holds {self.nbytes(key)} bytes, more than the "
                             f"{limit} such an entry may")
        return self._read(key)

    def parameter(self, key, shape):
        """A float array of exactly `shape`, checked before it is read."""
        if key not in self.headers:
            raise KeyError(key)
        found, dtype = self.headers[key]
        if dtype.kind != "f":
            raise Unreadable(f"{key} holds {dtype} values, not floats")
        if found != tuple(shape):
            raise Unreadable(f"{key} has shape {found}, but the network's description "
                             f"needs {tuple(shape)}")
        return self._read(key)


READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, zlib.error, ValueError,
               NotImplementedError, RuntimeError)  # RuntimeError: an encrypted member
