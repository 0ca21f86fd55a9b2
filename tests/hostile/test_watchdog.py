"""Point 2 (watchdog): an item that never finishes gets its worker killed, is retried once, then fails as timed out;
the run goes on. A worker that stops itself (SIGSTOP) and a FIFO listed in a manifest (opening it blocks)."""
import json
import os

from .helpers import FILE_STAGE, amela, write_wav


def _manifest(tmp_path, paths):
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"audio_filepath": str(p), "duration": 1.0}) + "\n" for p in paths))
    return m


def test_stopped_worker_and_fifo_time_out_and_the_run_goes_on(tmp_path):
    good = [write_wav(tmp_path / f"good{i}.wav") for i in range(4)]
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    stopper = write_wav(tmp_path / "stopper.wav")
    manifest = _manifest(tmp_path, [good[0], fifo, good[1], stopper, good[2], good[3]])
    run = tmp_path / "run"
    proc = amela("run", FILE_STAGE, manifest, "-o", run, "--workers", 2, "--batch-size", 2, "--read-file",
                 "--stop-on", "stopper.wav", "--item-timeout-s", 2, "--no-progress", check=1, timeout=120)
    failures = {f["audio_filepath"]: f for f in map(json.loads, (run / "failures.jsonl").open())}
    assert set(failures) == {str(fifo), str(stopper)}
    for f in failures.values():
        assert f["error_type"] == "Timeout" and f["message"].startswith("timed out after 2 s")
    done = [json.loads(line)["audio_filepath"] for line in (run / "echo.jsonl").open()]
    assert done == [str(p) for p in good]  # every other item, once, in order
    assert "killing it" in proc.stderr
    stats = json.loads((run / "stats.json").read_text())
    assert stats["worker_crashes"] == 0  # killed by the watchdog, not crashes


def test_the_default_timeout_grows_with_duration_and_has_a_floor():
    from amela.runner.plan import ITEM_TIMEOUT_FLOOR_S, RunOptions
    from tests.hostile.stages import FileStage

    timeout_s = RunOptions().timeout_s(FileStage)
    assert timeout_s([{"duration": 0.0}]) == ITEM_TIMEOUT_FLOOR_S
    assert timeout_s([{"duration": 3600.0}]) > timeout_s([{"duration": 60.0}]) > ITEM_TIMEOUT_FLOOR_S
    assert RunOptions(item_timeout_s=0).timeout_s(FileStage) is None
    assert RunOptions(item_timeout_s=5).timeout_s(FileStage)([{}, {}]) == 10


def _a_worker_is_stopped(pid: int) -> bool:
    import psutil

    try:
        return any(c.status() == psutil.STATUS_STOPPED for c in psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:  # a worker that just ended
        return False


def test_an_item_a_slurm_task_was_stopped_on_twice_is_not_requeued_forever(tmp_path):
    """Point 2 on SLURM: a task stopped (time limit, preemption) while an item runs is requeued and resumes; the
    second time it is stopped on the same item, that item fails instead of looping requeue -> hang -> requeue."""
    import signal
    import subprocess
    import sys
    import time

    good = [write_wav(tmp_path / f"good{i}.wav") for i in range(2)]
    stopper = write_wav(tmp_path / "stopper.wav")
    manifest = _manifest(tmp_path, [good[0], stopper, good[1]])
    run = tmp_path / "run"
    amela("prepare", FILE_STAGE, manifest, "-o", run, "--batch-size", 1, "--stop-on", "stopper.wav",
          "--item-timeout-s", 0, check=0)
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "amela", "run-shard", str(run), "0", "--workers", "1",
                                 "--no-progress"], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (run / "shards" / "00000" / "output.partial").exists() or \
                "good0" not in (run / "shards" / "00000" / "output.partial").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        while not _a_worker_is_stopped(proc.pid):  # the stopper is being processed: its worker stopped itself
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # what the batch script does on USR1 before `scontrol requeue`
        assert proc.wait(timeout=60) == 143
    amela("run-shard", run, 0, "--workers", 1, "--no-progress", check=0, env=env, timeout=60)
    lines = (run / "shards" / "00000" / "failures.partial").read_text().splitlines()
    failures = [json.loads(line.split("\t", 1)[1]) for line in lines]
    assert [f["audio_filepath"] for f in failures] == [str(stopper)]
    assert "stopped twice" in failures[0]["message"]
