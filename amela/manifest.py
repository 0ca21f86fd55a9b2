"""JSONL manifests: read + validate (every line, `file:line: problem`), atomic writes, directory scan.

Records stay plain dicts so that stages carry unknown fields through untouched; the contract (NeMo's keys) is checked
here once, on the way in. orjson is used because reading 1M lines is on the path of every array task.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import ManifestError

logger = logging.getLogger("amela.manifest")
REQUIRED_KEYS = ("audio_filepath", "duration")
ON_INVALID = ("fail", "skip")
# No real recording lasts a week: larger values are samples or milliseconds written as seconds, and would turn every
# figure of a run (hours, throughput) into nonsense.
MAX_SECONDS = 7 * 86400.0
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """One rejected manifest line."""

    path: str
    line: int  # 1-based; 0 when the problem is not tied to a line
    message: str
    text: str = ""  # the raw line, kept so a skipped line is never lost

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"

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
    if value > MAX_SECONDS:
        return (f"'{key}' is {value!r} s, above the ceiling of 7 days ({MAX_SECONDS:.0f} s): durations are seconds "
                "(not samples or milliseconds)")
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
    """What makes two entries duplicates: the same audio span (of the same file, however its path is spelled)."""
    return (normalise_path(record["audio_filepath"]), record.get("offset", 0), record["duration"])


def normalise_path(path: str) -> str:
    """`/a//b.wav` and `/a/x/../b.wav` are `/a/b.wav` (lexically: symlinks are not resolved, the files may not be
    reachable from here). The common clean path costs two substring tests."""
    if "//" in path or "/." in path:
        return os.path.normpath(path)
    return path


def _lines(path: str) -> Iterator[bytes]:
    """The lines of a manifest without their newline (a leading UTF-8 byte-order mark dropped), read as a stream;
    a file that cannot be read is a ManifestError naming it."""
    try:
        fh = open(path, "rb")
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a directory, not a manifest") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    with fh:
        first = True
        for raw in fh:
            if first:
                first = False
                if raw.startswith(BOM):
                    raw = raw[len(BOM):]
            yield raw[:-1] if raw[-1:] == b"\n" else raw


# What classify() yields per non-blank line: (lineno, raw, record, key) for a valid one (key: see record_key),
# (lineno, raw, None, reason) for an invalid one.
Line = tuple


def classify(path: str) -> Iterator[Line]:
    """Parse and check every line of a manifest, streaming; paths are normalised (in the record too).
    The loop is written for speed (an array task may read a million lines): the common valid line costs one
    orjson.loads and a few type checks; any line that fails them goes through validate_record() for its message."""
    for lineno, raw in enumerate(_lines(path), 1):
        try:
            record = loads(raw)
        except orjson.JSONDecodeError as exc:
            if raw.strip():
                yield lineno, raw, None, f"malformed JSON: {exc}"
            continue
        valid = plainly_valid(record)
        if valid is None:
            yield lineno, raw, None, validate_record(record) or "invalid record"
            continue
        p, o, d, normalised = valid
        if normalised:
            record["audio_filepath"] = p
        yield lineno, raw, record, (p, o, d)


def plainly_valid(record, inf: float = MAX_SECONDS) -> tuple[str, float, float, bool] | None:
    """(path, offset, duration, whether the path was normalised) of a record that passes the common checks, in a
    few type tests (the hot path of every manifest read); None: validate_record() says what is wrong."""
    if type(record) is not dict:
        return None
    p, d = record.get("audio_filepath"), record.get("duration")
    o = record.get("offset", 0)
    if not (type(p) is str and p[:1] == "/" and (type(d) is float or type(d) is int) and 0 <= d <= inf
            and (type(o) is float or type(o) is int) and 0 <= o <= inf):
        return None
    if "//" in p or "/." in p:
        return os.path.normpath(p), o, d, True
    return p, o, d, False


def read_manifest(path: str | os.PathLike) -> tuple[list[dict], list[Problem]]:
    """Parse and validate every line. Returns the valid records (in order) and the problems of the others.

    Blank lines are ignored; so is a UTF-8 byte-order mark (editors on Windows write one). Paths are normalised
    (`/a//b.wav` -> `/a/b.wav`, in the record too), so a duplicate (same file, offset, duration) is caught however
    it is spelled: a problem on its later line. This holds every record in memory: a run's preparation uses
    ManifestScan instead, which does not.
    """
    path = str(path)
    records: list[dict] = []
    problems: list[Problem] = []
    seen: dict[tuple, int] = {}
    for lineno, raw, record, key in classify(path):
        if record is None:
            problems.append(Problem(path, lineno, key, _text(raw)))
            continue
        first = seen.setdefault(key, lineno)
        if first == lineno:
            records.append(record)
        else:
            problems.append(Problem(path, lineno, f"duplicate of line {first} ({key[0]})", _text(raw)))
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
# First bytes of audio containers: a single audio file given as INPUT is recognised even without its extension.
AUDIO_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff", b"\xff\xfb", b"\xff\xf3")


def shown(path: str) -> str:
    """A path as text that JSON and a terminal can carry: bytes that are not UTF-8 appear as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_audio_file(path: str | os.PathLike) -> bool:
    """A file named like audio, or starting like an audio container (not a JSON manifest)."""
    if str(path).lower().endswith(AUDIO_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(AUDIO_MAGIC)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def _file_problem(path: str, st: os.stat_result | None, error: OSError | None) -> str | None:
    """Why a listed path cannot be an input, without opening it (opening a FIFO would wait forever)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8, which a JSON manifest cannot carry; rename the file (e.g. convmv)"
    if error is not None:
        if error.errno == errno.ELOOP:
            return "symlink loop: the link never reaches a file"
        if error.errno == errno.ENOENT:
            return "broken symlink: its target does not exist"
        return f"cannot stat: {error.strerror or error}"
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        return f"{kind}, not an audio file: not opened"
    return None


def _file_record(path: str) -> dict:
    """A record from the file's header (soundfile.info), never by decoding. An unreadable header still gives a
    record, with duration 0 and `header_error`, so that the stage reports the file as a failure with its reason."""
    import soundfile  # here, not at module level: the CLI's --help must not pay for it

    record = {"audio_filepath": path, "duration": 0.0}
    try:
        info = soundfile.info(path)
        if info.samplerate > 0:
            record["duration"] = info.frames / info.samplerate
    except Exception as exc:  # noqa: BLE001 - a bad header is the stage's failure to report, with its reason
        record["header_error"] = f"{type(exc).__name__}: {exc}"
    return record


def scan_file(path: str | os.PathLike) -> tuple[list[dict], list[Problem]]:
    """A single audio file given as INPUT: a one-record run."""
    path = os.path.abspath(path)
    try:
        st, error = os.stat(path), None
    except OSError as exc:
        st, error = None, exc
    reason = _file_problem(path, st, error)
    if reason:
        return [], [Problem(shown(path), 0, reason, shown(path))]
    return [_file_record(path)], []


def scan_directory(root: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> tuple[list[dict], list[Problem]]:
    """Records for every audio file under `root` (see list_directory), durations from their headers."""
    paths, problems = list_directory(root, extensions)
    return [_file_record(p) for p in paths], problems


def list_directory(root: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> tuple[list[str], list[Problem]]:
    """Every audio file under `root` (recursive, sorted, absolute paths), and a Problem for every path
    that cannot be one: a subdirectory that cannot be read, a name that is not UTF-8, a FIFO, socket or device, a
    broken or looping symlink. Nothing is dropped without a word, nothing but regular files is ever opened.

    Symlinks are followed; a real file reached twice (through links) is taken once, and a directory reached again
    (`ln -s . loop`) is not entered again, so the scan ends and lists no duplicates.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    exts = tuple(e.lower() for e in extensions)
    records: list[str] = []
    problems: list[Problem] = []
    seen_files: set[tuple[int, int]] = set()
    st = root.stat()
    seen_dirs = {(st.st_dev, st.st_ino)}
    loops = duplicates = 0

    def unreadable(exc: OSError) -> None:
        where = shown(exc.filename or str(root))
        problems.append(Problem(where, 0, f"cannot read directory ({exc.strerror or exc}): the files in it are not "
                                          "in this run; fix its permissions and rerun into a new run directory",
                                where))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        keep = []
        for name in sorted(dirnames):
            try:
                dst = os.stat(os.path.join(dirpath, name))
            except OSError:
                keep.append(name)  # os.walk reports it through onerror
                continue
            if (dst.st_dev, dst.st_ino) in seen_dirs:
                loops += 1  # a symlink back into what is scanned already: entering it would never end
                logger.warning("%s: not scanned again (the same directory was reached through another path)",
                               shown(os.path.join(dirpath, name)))
                continue
            seen_dirs.add((dst.st_dev, dst.st_ino))
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if not name.lower().endswith(exts):
                continue
            path = os.path.join(dirpath, name)
            try:
                fst, error = os.stat(path), None
            except OSError as exc:
                fst, error = None, exc
            reason = _file_problem(path, fst, error)
            if reason:
                problems.append(Problem(shown(path), 0, reason, shown(path)))
                continue
            if (fst.st_dev, fst.st_ino) in seen_files:
                duplicates += 1
                continue
            seen_files.add((fst.st_dev, fst.st_ino))
            records.append(path)
    if duplicates:
        logger.info("%s: %d file(s) reached again through symlinks, taken once", root, duplicates)
    if not records and not problems:
        raise ManifestError(f"{root}: no audio files found (looked for {', '.join(exts)})")
    return records, problems
