"""The direct native path against ten_vad's own wrapper, and the loading errors (libc++, aarch64)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from amela.errors import StageUnavailableError
from amela.vad import native
from amela.vad.config import VadConfig
from amela.vad.stage import VadStage

from .conftest import SR, frames_from_segments, record, run_stage, write


def wrapper_decisions(audio: np.ndarray, hop: int, threshold: float = 0.5):
    """ten_vad's public API as its README shows it: one fresh TenVad, process() frame by frame."""
    from ten_vad import TenVad

    vad = TenVad(hop, threshold)
    out = [vad.process(audio[i * hop:(i + 1) * hop]) for i in range(len(audio) // hop)]
    return np.array([p for p, _ in out], np.float32), np.array([f for _, f in out], np.int32)


@pytest.mark.parametrize("hop", [256, 160])
def test_native_equals_wrapper_exactly(speech16, hop):
    lib = native.load_library()
    probs, flags = native.NativeVad(lib, hop, 0.5, capacity_frames=8).run(speech16)  # tiny capacity: grows
    ref_probs, ref_flags = wrapper_decisions(speech16, hop)
    assert len(flags) == len(speech16) // hop
    assert np.array_equal(flags, ref_flags)
    assert np.array_equal(probs, ref_probs)
    assert 0 < flags.mean() < 1  # the audio has both speech and silence


def test_block_feeding_equals_one_call(speech16):
    vad = native.NativeVad(native.load_library(), 256, 0.5)
    whole = vad.run(speech16)
    vad.start()
    for block in np.array_split(speech16, 53):  # odd sizes: carries partial hops across blocks
        vad.feed(block)
    parts = vad.finish()
    assert np.array_equal(whole[0], parts[0]) and np.array_equal(whole[1], parts[1])


@pytest.mark.parametrize("hop", [256, 160])
def test_stage_segments_are_the_native_decisions(speech_wav, speech16, hop):
    stage = VadStage(VadConfig(hop_size=hop))
    stage.setup()
    (out,) = run_stage(stage, [record(speech_wav)])
    _, ref_flags = wrapper_decisions(speech16, hop)
    # flag 1 is speech; the library gives -1 for the first frame at hop 160 (too little history to score)
    assert frames_from_segments(out["speech_segments"], hop / SR) == set(np.flatnonzero(ref_flags == 1).tolist())
    assert out["speech_ratio"] == pytest.approx((ref_flags == 1).sum() * hop / len(speech16), abs=1e-6)


def test_results_do_not_depend_on_previous_files(tmp_path, stage, speech16):
    """A fresh native handle per file: a file's result is the same alone or after others."""
    rng = np.random.default_rng(3)
    other = write(tmp_path / "other.wav", (rng.standard_normal(3 * SR) * 3000).astype(np.int16), subtype="PCM_16")
    target = write(tmp_path / "target.wav", speech16[: 6 * SR], subtype="PCM_16")
    alone = run_stage(stage, [record(target)])[0]
    after = run_stage(stage, [record(other), record(target), record(other)])[1]
    assert alone == after
    # ... whereas one wrapper instance reused across files does carry state (why the stage never does that)
    from ten_vad import TenVad

    vad = TenVad(256, 0.5)
    first = [vad.process(speech16[i * 256:(i + 1) * 256])[0] for i in range(40)]
    again = [vad.process(speech16[i * 256:(i + 1) * 256])[0] for i in range(40)]
    assert first != again


def _patched_copy(src: str, dst: str, old: bytes, new: bytes) -> str:
    data = open(src, "rb").read()
    assert len(old) == len(new) and old in data
    with open(dst, "wb") as fh:
        fh.write(data.replace(old, new))
    return dst


def test_missing_libcxx_gives_one_clear_message(tmp_path):
    # A copy of the real library whose dependency is renamed to a libc++ that exists nowhere: the loader fails
    # exactly as on a machine without Debian's libc++1.
    lib = _patched_copy(native.library_path(), str(tmp_path / "libten_vad.so"), b"libc++.so.1", b"libc++.so.7")
    with pytest.raises(StageUnavailableError) as info:
        native.load_library(lib)
    message = str(info.value)
    assert "libc++1" in message and "apt-get install libc++1" in message
    assert native.LIBCXX_DIR_ENV in message and "RTLD_GLOBAL" in message
    assert "vad_library" not in message


def test_libcxx_dir_workaround_loads_copied_runtime(tmp_path):
    """The no-root workaround for real, in a fresh process: a library needing 'libc++.so.7' loads once a copied
    libc++ with that soname sits in AMELA_LIBCXX_DIR (preloaded with RTLD_GLOBAL)."""
    found = {}
    for name in native.LIBCXX_FILES:
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            if os.path.exists(os.path.join(d, name)):
                found[name] = os.path.realpath(os.path.join(d, name))
                break
    if len(found) != len(native.LIBCXX_FILES):
        pytest.skip("this test copies the system libc++ runtime (Debian libc++1), which is not here")
    libdir = tmp_path / "libcxx"
    libdir.mkdir()
    for name, path in found.items():
        shutil.copy(path, libdir / name)
    _patched_copy(found["libc++.so.1"], str(libdir / "libc++.so.1"), b"libc++.so.1", b"libc++.so.7")
    lib = _patched_copy(native.library_path(), str(tmp_path / "libten_vad.so"), b"libc++.so.1", b"libc++.so.7")
    code = textwrap.dedent(f"""
        import numpy as np
        from amela.vad import native
        lib = native.load_library({lib!r})
        probs, flags = native.NativeVad(lib).run(np.zeros(16000, np.int16))
        print(len(flags), int(flags.sum()))
    """)
    env = {**os.environ, native.LIBCXX_DIR_ENV: str(libdir)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["62", "0"]
    without = subprocess.run([sys.executable, "-c", code], env={k: v for k, v in env.items()
                                                                if k != native.LIBCXX_DIR_ENV},
                             capture_output=True, text=True, timeout=60)
    assert without.returncode != 0 and "libc++1" in without.stderr


def test_linux_aarch64_is_named(monkeypatch):
    monkeypatch.setattr(native.platform, "system", lambda: "Linux")
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    with pytest.raises(StageUnavailableError, match="aarch64"):
        native.library_path()


def test_doctor_reports_the_native_library():
    checks = VadStage.doctor()
    by_name = {what: (ok, detail) for what, ok, detail in checks}
    ok, detail = by_name["TEN-VAD native library"]
    assert ok, detail
    assert "loads" in detail
