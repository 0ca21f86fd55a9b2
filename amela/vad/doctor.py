"""`amela doctor` checks for the VAD stage: the native library loads, the audio libraries are there."""
from __future__ import annotations


def _check(what: str, fn) -> tuple[str, bool, str]:
    try:
        return what, True, fn()
    except Exception as exc:  # a doctor reports every problem, it does not stop at the first
        return what, False, str(exc)


def _native() -> str:
    from .native import library_path, library_version, load_library

    path = library_path()
    return f"TEN-VAD {library_version(load_library(path))} loads ({path})"


def _soundfile() -> str:
    import soundfile

    formats = soundfile.available_formats()
    note = "" if "MP3" in formats else " (no MP3: libsndfile >= 1.1 needed for .mp3)"
    return f"soundfile {soundfile.__version__}, libsndfile {soundfile.__libsndfile_version__}{note}"


def _soxr() -> str:
    import soxr

    return f"soxr {soxr.__version__}"


def checks() -> list[tuple[str, bool, str]]:
    return [
        _check("TEN-VAD native library", _native),
        _check("audio decoding", _soundfile),
        _check("resampling", _soxr),
    ]
