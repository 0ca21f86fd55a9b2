"""Stored probabilities (--save-probs), `amela vad probs`, and `amela vad resegment` against full reruns."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amela.paths import RunPaths
from amela.runner import shardio
from amela.runner.blobs import BlobWriter, iter_index, read
from amela.stage import Blob
from amela.vad import probs as pr
from amela.vad.segments import decide

from .conftest import SR, write

OUTPUTS = ("vad.jsonl", "vad_segments.jsonl", "vad_packed.jsonl", "vad_stats.csv")
OPTIONS = ("--neg-threshold", "0.35", "--pad-onset-s", "0.1", "--pad-offset-s", "0.25", "--min-silence-s", "0.1",
           "--max-segment-s", "3", "--min-segment-s", "0.5", "--segments", "--pack-to-s", "6", "--threshold", "0.6")


def amela(*args, check=0):
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech16):
    """8 files of 3-7 s cut from the speech fixture, some noisy, and a manifest with a span of one of them."""
    root = tmp_path_factory.mktemp("reseg")
    rng = np.random.default_rng(3)
    records = []
    for i in range(8):
        start = int(rng.integers(0, len(speech16) - 7 * SR))
        piece = speech16[start: start + int(rng.uniform(3, 7) * SR)].astype(np.float32)
        piece += rng.standard_normal(len(piece)).astype(np.float32) * (200 if i % 2 else 5)
        path = write(root / f"f{i}.wav", np.clip(piece, -32768, 32767).astype(np.int16), subtype="PCM_16")
        records.append({"audio_filepath": path, "duration": len(piece) / SR, "speaker": f"s{i % 3}"})
    records.append({**records[0], "offset": 1.0, "duration": 2.0})  # a span: the probabilities start at 1 s
    manifest = root / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest


@pytest.fixture(scope="module")
def stored(corpus, tmp_path_factory):
    """The corpus run once per dtype with default options and stored probabilities."""
    base = tmp_path_factory.mktemp("stored")
    runs = {}
    for dtype in ("float32", "uint8"):
        runs[dtype] = base / dtype
        amela("run", "vad", corpus, "-o", runs[dtype], "--save-probs", dtype, "--shards", 2, "--workers", 1,
              "--no-progress")
    return runs


def test_blob_writer_resumes_after_a_torn_item(tmp_path):
    data, index = tmp_path / "p.bin", tmp_path / "p.idx"
    w = BlobWriter(data, index, set())
    for i, payload in enumerate((b"aaaa", b"bb", b"cccccc")):
        w.write(i, {"audio_filepath": f"/x{i}.wav"}, Blob(payload, {"k": i}))
    w.close()
    with open(data, "ab") as fh:  # a blob whose index line never got written
        fh.write(b"torn")
    with open(index, "ab") as fh:  # and a torn index line
        fh.write(b'3\t{"pos": 12, "si')
    w = BlobWriter(data, index, {0, 1})  # item 2 wrote its blob and index line but never its output line
    assert os.path.getsize(data) == 6
    w.write(2, {"audio_filepath": "/x2.wav"}, Blob(b"CC", {"k": 2}))
    w.close()
    entries = dict(shardio.iter_records(index))
    assert sorted(entries) == [0, 1, 2]
    assert [read(data, entries[i]) for i in range(3)] == [b"aaaa", b"bb", b"CC"]
    assert entries[2]["pos"] == 6 and entries[1]["k"] == 1 and entries[0]["audio_filepath"] == "/x0.wav"


def test_probability_encodings():
    rng = np.random.default_rng(1)
    p = rng.random(10000).astype(np.float32)
    p[0] = -1.0
    assert np.array_equal(pr.decode(pr.encode(p, "float32"), "float32"), p)
    assert np.abs(pr.decode(pr.encode(p, "float16"), "float16")[1:] - p[1:]).max() < 1e-3
    u = pr.decode(pr.encode(p, "uint8"), "uint8")
    assert np.abs(u[1:] - p[1:]).max() <= 0.5 / 255 + 1e-6 and u[0] == 0.0
    assert len(pr.encode(p, "uint8")) == len(p) and len(pr.encode(p, "float16")) == 2 * len(p)
    assert pr.storage_bytes_per_hour("uint8") == 225000  # 1,000 h: 225 MB


def test_probabilities_are_stored_per_shard_with_an_index(stored, corpus):
    paths = RunPaths(stored["float32"])
    assert sorted(p.name for p in paths.shards_dir.glob("*/probs.*")) == ["probs.bin", "probs.bin", "probs.idx",
                                                                           "probs.idx"]
    entries = list(iter_index(paths, "probs"))
    assert len(entries) == 9
    span = [e for _, _, e in entries if e["offset"] == 1.0][0]
    assert span["offset_s"] == 1.0 and span["frames"] == int(2.0 * SR) // 256


def test_probs_command_prints_and_exports(stored, corpus, tmp_path):
    first = json.loads(corpus.read_text().splitlines()[0])["audio_filepath"]
    proc = amela("vad", "probs", stored["float32"], first, check=None)
    assert proc.returncode == 2 and "--offset" in proc.stderr  # two spans of that file in the run
    lines = amela("vad", "probs", stored["float32"], first, "--offset", "1").stdout.splitlines()
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    assert float(rows[0][0]) == 1.0 and float(rows[1][0]) == pytest.approx(1.016)
    out = tmp_path / "p.npy"
    amela("vad", "probs", stored["uint8"], first, "--offset", "0", "-o", out, "--plot", tmp_path / "p.png")
    probs = np.load(out)
    assert probs.dtype == np.float32 and 0 <= probs.min() and probs.max() <= 1
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "no stored probabilities for" in amela("vad", "probs", stored["uint8"], "/nope.wav", check=2).stderr


def test_resegment_float32_equals_a_full_rerun(stored, corpus, tmp_path):
    amela("vad", "resegment", stored["float32"], "-o", tmp_path / "reseg", *OPTIONS, "--shards", 3, "--workers", 1,
          "--no-progress")
    amela("run", "vad", corpus, "-o", tmp_path / "full", "--save-probs", "float32", *OPTIONS, "--workers", 1,
          "--no-progress")
    for name in OUTPUTS:
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "reseg" / name).read_bytes(), name
    packed = [json.loads(line) for line in (tmp_path / "reseg" / "vad_packed.jsonl").read_text().splitlines()]
    assert packed and all(p["duration"] <= 6.0 + 1e-4 for p in packed)
    # the new run resumes like any run: a second call finds every shard done and changes nothing
    before = (tmp_path / "reseg" / "vad.jsonl").read_bytes()
    amela("vad", "resegment", stored["float32"], "-o", tmp_path / "reseg", *OPTIONS, "--shards", 3, "--no-progress")
    assert (tmp_path / "reseg" / "vad.jsonl").read_bytes() == before
    assert not list((tmp_path / "reseg" / "shards").glob("*/probs.bin"))  # it refers to the old run's probabilities
    err = amela("vad", "resegment", tmp_path / "reseg", "-o", tmp_path / "again", check=2).stderr
    assert f"resegment the run it was made from ({stored['float32']})" in err


def test_resegment_with_the_old_options_reproduces_the_old_run(stored, tmp_path):
    amela("vad", "resegment", stored["float32"], "-o", tmp_path / "same", "--workers", 0, "--no-progress")
    for name in ("vad.jsonl", "vad_stats.csv"):
        assert (stored["float32"] / name).read_bytes() == (tmp_path / "same" / name).read_bytes()


def test_uint8_frame_decisions_agree_with_float32(stored):
    """The documented figure: uint8 storage changes at most 0.1 % of frame decisions (threshold 0.5 and others)."""
    ref = {(e["audio_filepath"], e["offset"]): read(sp.blob("probs"), e)
           for sp, _, e in iter_index(RunPaths(stored["float32"]), "probs")}
    for threshold, neg in ((0.5, None), (0.3, None), (0.6, 0.35)):
        same = total = 0
        for sp, _, e in iter_index(RunPaths(stored["uint8"]), "probs"):
            q = decide(pr.decode(read(sp.blob("probs"), e), "uint8"), threshold, neg)
            f = decide(pr.decode(ref[(e["audio_filepath"], e["offset"])], "float32"), threshold, neg)
            same, total = same + int((q == f).sum()), total + len(f)
        assert total > 2000 and same / total >= 0.999, (threshold, neg, same, total)


def test_interrupted_run_keeps_its_stored_probabilities_consistent(stored, corpus, tmp_path):
    """A crash between an item's blob and its output line: the rerun redoes the item and cuts the orphan bytes."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(stored["float32"], run)
    sp = RunPaths(run).shard(0)
    sp.done.unlink()
    lines = sp.output.read_bytes().splitlines(keepends=True)
    sp.output.write_bytes(b"".join(lines[:-1]))  # the last item's output line never got written
    with open(sp.blob("probs"), "ab") as fh:
        fh.write(b"\0" * 100)  # nor was its blob the end of the file
    amela("run", "vad", corpus, "-o", run, "--save-probs", "float32", "--shards", 2, "--workers", 1, "--no-progress")
    assert (run / "vad.jsonl").read_bytes() == (stored["float32"] / "vad.jsonl").read_bytes()
    assert sp.blob("probs").read_bytes() == RunPaths(stored["float32"]).shard(0).blob("probs").read_bytes()


def test_resegment_refuses_what_needs_the_model(stored, tmp_path):
    err = amela("vad", "resegment", stored["uint8"], "-o", tmp_path / "x", "--hop-size", "160", check=2).stderr
    assert "hop_size cannot change" in err
    err = amela("vad", "resegment", stored["uint8"], "-o", stored["uint8"], check=2).stderr
    assert "must differ" in err
    import shutil

    plain = tmp_path / "plain"  # the same run as if made without --save-probs
    shutil.copytree(stored["uint8"], plain)
    config = plain / "config.yaml"
    config.write_text(config.read_text().replace("save_probs: uint8", "save_probs: null"))
    err = amela("vad", "resegment", plain, "-o", tmp_path / "y", check=2).stderr
    assert "probabilities were not stored" in err and "--save-probs" in err
