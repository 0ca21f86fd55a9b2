"""JSONL manifests: read + validate (every line, `file:line: problem`), atomic writes, directory scan.

Records stay plain dicts so that stages carry unknown fields through untouched; the contract (NeMo's keys) is checked
here once, on the way in. orjson is used because reading 1M lines is on the path of every array task.
"""
from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import ManifestError

Seconds = float
REQUIRED_KEYS = ("audio_filepath", "duration")
ON_INVALID = ("fail", "skip")


@dataclass(frozen=True)
class Problem:
    """One rejected manifest line."""

    path: str
    line: int  # 1-based; 0 when the problem is not tied to a line
    message: str
    text: str = ""  # the raw line, kept so a skipped line is never lost

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.path, "line": self.line, "reason": self.message, "text": self.text}


def dumps(obj) -> bytes:
    """One JSON line (no newline). Non-str keys and numpy scalars are accepted."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


loads = orjson.loads


def _check_number(record: dict, key: str, required: bool) -> str | None:
    if key not in record:
        return f"missing '{key}'" if required else None
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"'{key}' must be a number of seconds, got {value!r}"
    if not math.isfinite(value):
        return f"'{key}' must be finite, got {value!r}"
    if value < 0:
        return f"'{key}' must be >= 0, got {value!r}"
    return None


def validate_record(record) -> str | None:
    """The reason a parsed line breaks the manifest contract, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    path = record.get("audio_filepath")
    if path is None:
        return "missing 'audio_filepath'"
    if not isinstance(path, str) or not path:
        return f"'audio_filepath' must be a non-empty string, got {path!r}"
    if not path.startswith("/"):
        return f"'audio_filepath' must be absolute, got {path!r}"
    return _check_number(record, "duration", True) or _check_number(record, "offset", False)


def record_key(record: dict) -> tuple:
    """What makes two entries duplicates: the same audio span."""
    return (record["audio_filepath"], record.get("offset", 0), record["duration"])


def read_manifest(path: str | os.PathLike) -> tuple[list[dict], list[Problem]]:
    """Parse and validate every line. Returns the valid records (in order) and the problems of the others.

    Blank lines are ignored. A duplicate (same audio_filepath, offset, duration) is a problem on its later line.
    The loop is written for speed (an array task may read a million lines): the common valid line costs one
    orjson.loads and a few type checks; any line that fails them goes through validate_record() for its message.
    """
    path = str(path)
    try:
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    records: list[dict] = []
    problems: list[Problem] = []
    seen: dict[tuple, int] = {}
    inf = math.inf
    for lineno, raw in enumerate(lines, 1):
        try:
            record = loads(raw)
        except orjson.JSONDecodeError as exc:
            if raw.strip():
                problems.append(Problem(path, lineno, f"malformed JSON: {exc}", _text(raw)))
            continue
        if type(record) is dict:
            p, d = record.get("audio_filepath"), record.get("duration")
            o = record.get("offset", 0)
            if (type(p) is str and p[:1] == "/" and (type(d) is float or type(d) is int) and 0 <= d < inf
                    and (type(o) is float or type(o) is int) and 0 <= o < inf):
                key = (p, o, d)
                first = seen.setdefault(key, lineno)
                if first == lineno:
                    records.append(record)
                else:
                    problems.append(Problem(path, lineno, f"duplicate of line {first} ({p})", _text(raw)))
                continue
        problems.append(Problem(path, lineno, validate_record(record) or "invalid record", _text(raw)))
    return records, problems


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Records of a JSONL file written by AMELA (no validation)."""
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                yield loads(raw)


def executable_mode() -> int:
    """0777 less the process umask: the mode a script written by `cp` or an editor plus `chmod +x` would get."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file beside `path`, created with mode 0666 so the kernel applies the umask (and a default ACL), like
    files that any other tool writes. tempfile.mkstemp would force 0600: results nobody in the group can read."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: cannot create a temporary file beside {path.name}")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb"):
    """Write to a temporary file beside `path`, flush + fsync, then rename over it: readers never see half a file.
    The file gets the mode the umask gives (0666 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSONL atomically; returns the count."""
    n = 0
    with atomic_open(path, "wb") as fh:
        for record in records:
            fh.write(dumps(record) + b"\n")
            n += 1
    return n


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")


def scan_directory(root: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> tuple[list[dict], list[Problem]]:
    """Records for every audio file under `root` (recursive, sorted, absolute paths).

    Durations come from file headers (soundfile.info), never by decoding. A file whose header cannot be read is still
    listed, with duration 0 and `header_error`, so that the stage reports it as a failure instead of it vanishing.
    """
    import soundfile  # here, not at module level: the CLI's --help must not pay for it

    root = Path(root).resolve()
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    exts = tuple(e.lower() for e in extensions)
    records: list[dict] = []
    problems: list[Problem] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(exts):
                continue
            path = os.path.join(dirpath, name)
            record = {"audio_filepath": path, "duration": 0.0}
            try:
                info = soundfile.info(path)
                if info.samplerate > 0:
                    record["duration"] = info.frames / info.samplerate
            except Exception as exc:  # a bad header is the stage's failure to report, with its reason
                record["header_error"] = f"{type(exc).__name__}: {exc}"
            records.append(record)
    if not records:
        raise ManifestError(f"{root}: no audio files found (looked for {', '.join(exts)})")
    return records, problems
