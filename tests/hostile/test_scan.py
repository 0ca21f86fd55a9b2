"""Points 1, 2 (scan), 3 and 9: the directory scan and manifests as people make them."""
import json
import os
import shutil
import socket
import stat

import pytest

from amela.manifest import read_manifest, scan_directory

from .helpers import FILE_STAGE, amela, write_wav

ODD_NAMES = ["a b.wav", 'q"uote.wav', "new\nline.wav", "tab\t.wav", "back\\slash.wav", "日本語.wav", "Ωμέγα.flac"]


def rejected(run):
    return [json.loads(line) for line in (run / "rejected.jsonl").read_text().splitlines()]


def outputs(run):
    return [json.loads(line) for line in (run / "echo.jsonl").read_text().splitlines()]


def test_a_name_that_is_not_utf8_is_reported_and_every_other_file_runs(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ODD_NAMES:
        write_wav(audio / name, fmt="FLAC" if name.endswith(".flac") else None)
    write_wav(os.fsencode(audio) + b"/caf\xe9.wav")
    run = tmp_path / "run"
    proc = amela("run", FILE_STAGE, audio, "-o", run, "--workers", 0, check=1)  # 1: a file was not processed
    got = sorted(os.path.basename(r["audio_filepath"]) for r in outputs(run))
    assert got == sorted(ODD_NAMES)
    (bad,) = rejected(run)
    assert bad["file"] == f"{audio}/caf\\xe9.wav" and "not valid UTF-8" in bad["reason"]
    assert "caf\\xe9.wav" in proc.stdout and "1 rejected" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_fifos_sockets_and_broken_links_are_rejected_never_opened(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_wav(audio / "good.wav")
    os.mkfifo(audio / "pipe.wav")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(audio / "sock.wav"))
    os.symlink(audio / "gone.wav", audio / "broken.wav")
    os.symlink("x.wav", audio / "y.wav")
    os.symlink("y.wav", audio / "x.wav")
    try:
        records, problems = scan_directory(audio)  # a FIFO opened here would block forever
    finally:
        sock.close()
    assert [os.path.basename(r["audio_filepath"]) for r in records] == ["good.wav"]
    why = {os.path.basename(p.path): p.message for p in problems}
    assert "FIFO" in why["pipe.wav"] and "socket" in why["sock.wav"]
    assert "broken symlink" in why["broken.wav"]
    assert "loop" in why["x.wav"] and "loop" in why["y.wav"]


def _unprivileged():
    """Root reads any directory: drop the capabilities that allow it so an unreadable directory is unreadable."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a directory unreadable")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unreadable_subdirectory_is_reported(tmp_path):
    import subprocess
    import sys

    audio = tmp_path / "audio"
    (audio / "locked").mkdir(parents=True)
    write_wav(audio / "good.wav")
    write_wav(audio / "locked" / "hidden.wav")
    os.chmod(audio / "locked", 0)
    run = tmp_path / "run"
    try:
        proc = subprocess.run([*_unprivileged(), sys.executable, "-m", "amela", "run", FILE_STAGE, str(audio), "-o",
                               str(run), "--workers", "0"], capture_output=True, text=True)
    finally:
        os.chmod(audio / "locked", stat.S_IRWXU)
    assert proc.returncode == 1, proc.stderr
    assert [os.path.basename(r["audio_filepath"]) for r in outputs(run)] == ["good.wav"]
    (bad,) = rejected(run)
    assert bad["file"] == str(audio / "locked") and "cannot read directory" in bad["reason"]
    assert "cannot read directory" in proc.stdout  # in the summary, not only in a file


def test_symlinks_are_followed_once_and_loops_end(tmp_path):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    write_wav(audio / "sub" / "a.wav")
    write_wav(audio / "b.wav")
    os.symlink(".", audio / "loop")
    os.symlink("..", audio / "sub" / "up")
    os.symlink("sub/a.wav", audio / "alias.wav")
    outside = tmp_path / "outside"
    outside.mkdir()
    write_wav(outside / "c.wav")
    os.symlink(outside, audio / "linked")
    records, problems = scan_directory(audio)
    real = sorted(os.path.realpath(r["audio_filepath"]) for r in records)
    assert real == sorted({str(audio / "b.wav"), str(audio / "sub" / "a.wav"), str(outside / "c.wav")})
    assert problems == []


def test_a_single_audio_file_is_an_input(tmp_path):
    wav = write_wav(tmp_path / "one.wav")
    noext = tmp_path / "recording"
    shutil.copy(wav, noext)
    for path in (wav, noext):
        run = tmp_path / f"run-{path.name}"
        amela("run", FILE_STAGE, path, "-o", run, "--workers", 0, check=0)
        assert [r["audio_filepath"] for r in outputs(run)] == [str(path)]


def test_byte_order_mark_and_spelled_differently_duplicates(tmp_path):
    lines = [{"audio_filepath": "/d/b.wav", "duration": 1}, {"audio_filepath": "/d//b.wav", "duration": 1},
             {"audio_filepath": "/d/x/../b.wav", "duration": 1}, {"audio_filepath": "/d/./c.wav", "duration": 2}]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in lines).encode())
    records, problems = read_manifest(path)
    assert [r["audio_filepath"] for r in records] == ["/d/b.wav", "/d/c.wav"]
    assert [(p.line, p.message) for p in problems] == [(2, "duplicate of line 1 (/d/b.wav)"),
                                                      (3, "duplicate of line 1 (/d/b.wav)")]


@pytest.mark.parametrize(("duration", "reason"), [("NaN", "malformed JSON"), ("1e999", "infinity"),
                                                  ("1e12", "7 days"), ("604801", "7 days")])
def test_durations_that_cannot_be_real_are_rejected(tmp_path, duration, reason):
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio_filepath": "/d/a.wav", "duration": 1}\n'
                    f'{{"audio_filepath": "/d/b.wav", "duration": {duration}}}\n')
    records, problems = read_manifest(path)
    assert len(records) == 1 and len(problems) == 1 and problems[0].line == 2
    assert reason in problems[0].message


def test_skipped_lines_make_the_exit_code_1(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"audio_filepath": "/d/a.wav", "duration": 1}\n{broken\n')
    proc = amela("run", FILE_STAGE, path, "-o", tmp_path / "run", "--workers", 0, "--on-invalid", "skip", check=1)
    assert "1 rejected" in proc.stdout and "m.jsonl:2: malformed JSON" in proc.stdout
