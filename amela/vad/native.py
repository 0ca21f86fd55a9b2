"""TEN-VAD's native library, called directly.

The `ten_vad` package is a ctypes wrapper: per 16 ms frame it squeezes and type-checks the array and builds three
ctypes objects. Here the library is loaded once per worker and `ten_vad_process` is called with plain addresses into
pre-allocated buffers: the same native calls in the same order, so the decisions are identical, without the
wrapper's per-frame work. A fresh native handle is created per file (about 1 ms): a handle carries state from one
file to the next, which would make results depend on file order, shard count and worker count.

Loading problems become StageUnavailableError with the fix, never the wrapper's `AttributeError ... vad_library`
(raised from `TenVad.__del__` when its constructor failed to load the library).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import platform

import numpy as np

from ..errors import StageUnavailableError

LIBCXX_DIR_ENV = "AMELA_LIBCXX_DIR"
LIBRARY_ENV = "AMELA_TEN_VAD_LIB"  # a TEN-VAD library built elsewhere (e.g. from source on Linux aarch64)
# The LLVM C++ runtime libten_vad.so links against, in dependency order (each needs the ones before it).
LIBCXX_FILES = ("libunwind.so.1", "libc++abi.so.1", "libc++.so.1")

LIBCXX_FIX = (
    "TEN-VAD's native library needs the LLVM C++ runtime libc++.so.1, which cannot be loaded ({detail}). "
    "Fix: install the Debian/Ubuntu package libc++1 (`apt-get install libc++1`, which also brings libc++abi1 and "
    "libunwind), or run scripts/setup.sh. Without root (e.g. on a cluster): copy libc++.so.1, libc++abi.so.1 and "
    "libunwind.so.1 from a machine that has them into a directory and set "
    f"{LIBCXX_DIR_ENV}=/that/directory; AMELA then loads them with ctypes (RTLD_GLOBAL) before TEN-VAD."
)


def _package_dir() -> str:
    spec = importlib.util.find_spec("ten_vad")
    if spec is None or not spec.submodule_search_locations:
        raise StageUnavailableError("TEN-VAD is not installed: `pip install ten-vad` (or run scripts/setup.sh)")
    return list(spec.submodule_search_locations)[0]


def library_path() -> str:
    """The native library: $AMELA_TEN_VAD_LIB, else the one shipped inside the ten_vad package for this platform."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        if not os.path.isfile(override):
            raise StageUnavailableError(f"{LIBRARY_ENV}={override}: no such file")
        return override
    system, machine = platform.system(), platform.machine().lower()
    if system == "Linux" and machine in ("aarch64", "arm64"):
        raise StageUnavailableError(
            "TEN-VAD ships no native library for Linux aarch64 (only Linux x86_64, macOS and Windows): run the VAD "
            f"stage on x86_64 nodes, or build libten_vad.so from TEN-VAD's sources and set {LIBRARY_ENV} to it")
    relpaths = {
        ("Linux", "x86_64"): "lib/Linux/x64/libten_vad.so",
        ("Linux", "amd64"): "lib/Linux/x64/libten_vad.so",
        ("Windows", "amd64"): "lib/Windows/x64/ten_vad.dll",
        ("Windows", "x86_64"): "lib/Windows/x64/ten_vad.dll",
        ("Windows", "x86"): "lib/Windows/x86/ten_vad.dll",
    }
    relpath = "lib/macOS/ten_vad.framework/Versions/A/ten_vad" if system == "Darwin" else relpaths.get((system, machine))
    if relpath is None:
        raise StageUnavailableError(f"TEN-VAD ships no native library for {system} {machine}")
    path = os.path.join(_package_dir(), relpath)
    if not os.path.exists(path):
        raise StageUnavailableError(f"TEN-VAD's native library is missing from the ten_vad package: {path}")
    return path


def preload_libcxx(directory: str | None = None) -> list[str]:
    """The no-root workaround: load a copied libc++ runtime globally so libten_vad.so finds its symbols."""
    directory = directory or os.environ.get(LIBCXX_DIR_ENV)
    if not directory:
        return []
    loaded = []
    for name in LIBCXX_FILES:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue  # e.g. a libc++ built without a separate libunwind
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise StageUnavailableError(f"{LIBCXX_DIR_ENV}={directory}: cannot load {name}: {exc}") from exc
        loaded.append(path)
    return loaded


def load_library(path: str | None = None) -> ctypes.CDLL:
    """Load the native library with typed signatures; StageUnavailableError (with the fix) when it cannot load."""
    path = path or library_path()
    preload_libcxx()
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        detail = str(exc)
        if "libc++" in detail or "libunwind" in detail:
            raise StageUnavailableError(LIBCXX_FIX.format(detail=detail)) from None
        raise StageUnavailableError(f"TEN-VAD: cannot load its native library {path}: {detail}") from None
    lib.ten_vad_create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_float]
    lib.ten_vad_create.restype = ctypes.c_int
    lib.ten_vad_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.ten_vad_destroy.restype = ctypes.c_int
    # Addresses as c_void_p: Python ints pass straight through, no per-frame ctypes objects.
    lib.ten_vad_process.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                    ctypes.c_void_p]
    lib.ten_vad_process.restype = ctypes.c_int
    return lib


class NativeVad:
    """Frame decisions for one file at a time: start(), feed(int16 chunks)..., finish() -> (probabilities, flags)."""

    def __init__(self, lib: ctypes.CDLL, hop_size: int = 256, threshold: float = 0.5, capacity_frames: int = 1 << 16):
        self.lib = lib
        self.hop_size = hop_size
        self.threshold = threshold
        # Grown by doubling, kept across files: one allocation per worker in practice.
        self._probs = np.empty(capacity_frames, np.float32)
        self._flags = np.empty(capacity_frames, np.int32)
        self._carry = np.empty(hop_size, np.int16)
        self._handle = ctypes.c_void_p(0)
        self._n = 0
        self._carry_n = 0

    def start(self) -> None:
        self.close()
        if self.lib.ten_vad_create(ctypes.byref(self._handle), self.hop_size, self.threshold) != 0:
            raise RuntimeError("TEN-VAD: ten_vad_create failed")
        self._n = 0
        self._carry_n = 0

    def close(self) -> None:
        if self._handle.value:
            self.lib.ten_vad_destroy(ctypes.byref(self._handle))
            self._handle.value = None

    def _reserve(self, frames: int) -> None:
        need = self._n + frames
        if need > len(self._probs):
            size = max(need, 2 * len(self._probs))
            self._probs = np.concatenate([self._probs[: self._n], np.empty(size - self._n, np.float32)])
            self._flags = np.concatenate([self._flags[: self._n], np.empty(size - self._n, np.int32)])

    def feed(self, samples: np.ndarray) -> None:
        """Process every complete hop of `samples` (int16, mono), keeping the remainder for the next call."""
        if self._carry_n:
            samples = np.concatenate([self._carry[: self._carry_n], samples])
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        hop = self.hop_size
        frames = len(samples) // hop
        self._reserve(frames)
        process, handle = self.lib.ten_vad_process, self._handle.value
        base, step = samples.ctypes.data, 2 * hop
        probs = self._probs.ctypes.data + 4 * self._n
        flags = self._flags.ctypes.data + 4 * self._n
        for i in range(frames):
            if process(handle, base + step * i, hop, probs + 4 * i, flags + 4 * i):
                raise RuntimeError(f"TEN-VAD: ten_vad_process failed at frame {self._n + i}")
        self._n += frames
        rest = len(samples) - frames * hop
        self._carry[:rest] = samples[frames * hop:]
        self._carry_n = rest

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and 0/1 flags of every complete frame (copies); the trailing partial hop is not scored."""
        self.close()
        return self._probs[: self._n].copy(), self._flags[: self._n].copy()

    def run(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.start()
        try:
            self.feed(samples)
        except BaseException:
            self.close()
            raise
        return self.finish()


def library_version(lib: ctypes.CDLL) -> str:
    lib.ten_vad_get_version.restype = ctypes.c_char_p
    return (lib.ten_vad_get_version() or b"").decode("ascii", "replace")
