import os
import subprocess
import sys

import numpy as np
import soundfile

FILE_STAGE = "tests.hostile.stages:FileStage"


def _arg(a):
    return os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a)


def amela(*args, check=None, **kw):
    proc = subprocess.run([sys.executable, "-m", "amela", *map(_arg, args)], capture_output=True, text=True, **kw)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def write_wav(path, seconds=0.5, rate=8000, fmt=None):
    """A short tone; `path` may be bytes (names that are not UTF-8)."""
    t = np.arange(int(seconds * rate)) / rate
    data = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if isinstance(path, bytes):
        with open(path, "wb") as fh:
            soundfile.write(fh, data, rate, format=fmt or "WAV", subtype="PCM_16")
    else:
        soundfile.write(str(path), data, rate, format=fmt, subtype="PCM_16")
    return path
