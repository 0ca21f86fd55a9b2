"""The sbatch scripts are pure functions of their inputs: compared with reviewed reference files in golden/.

Regenerate the references after an intended change with AMELA_UPDATE_GOLDEN=1 and review the diff."""
from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from amela.errors import ConfigError
from amela.executors import slurm
from amela.executors.sbatch import BatchJob, SlurmOptions, render_array_script, render_merge_script, time_seconds
from amela.executors.submitit import executor_params

GOLDEN = Path(__file__).parent / "golden"
CPU_JOB = BatchJob(run_dir="/scratch/runs/vad 1", stage="vad", job_name="amela-vad", python="/opt/venv/bin/python",
                   log_pattern="/scratch/runs/vad 1/logs/vad_%A_%a.out", cpus_per_task=4, mem="8G",
                   time="04:00:00", partition="cpu")
GPU_JOB = BatchJob(run_dir="/scratch/runs/asr", stage="asr", job_name="amela-asr", python="python",
                   log_pattern="/scratch/runs/asr/logs/asr_%A_%a.out", cpus_per_task=8, gpus_per_task=1,
                   mem="32G", time="1-00:00:00", partition="gpu", account="speech", qos="high", signal_delay_s=300,
                   venv="/home/me/amela/.venv", setup_cmds=("module load cuda/12.4",),
                   sbatch_args=("--constraint=a100",))
MERGE_JOB = replace(CPU_JOB, job_name="amela-vad-merge", log_pattern="/scratch/runs/vad 1/logs/merge_%j.out",
                    cpus_per_task=1, signal_delay_s=0)


@pytest.mark.parametrize("name,text", [
    ("array_cpu.sbatch", render_array_script(CPU_JOB)),
    ("array_gpu.sbatch", render_array_script(GPU_JOB)),
    ("merge.sbatch", render_merge_script(MERGE_JOB)),
])
def test_rendered_script_matches_reference(name, text):
    path = GOLDEN / name
    if os.environ.get("AMELA_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended: AMELA_UPDATE_GOLDEN=1 pytest {__file__}"
    proc = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_rendering_is_a_function_of_its_inputs_only():
    assert render_array_script(CPU_JOB) == render_array_script(replace(CPU_JOB))
    text = render_array_script(replace(CPU_JOB, signal_delay_s=0, gpus_per_task=2))
    assert "--signal" not in text and "--requeue" not in text
    assert "#SBATCH --gpus-per-task=2" in text
    assert "--gpus" not in render_array_script(CPU_JOB)


def test_time_formats():
    assert time_seconds("90") == 90 * 60
    assert time_seconds("10:30") == 10 * 60 + 30
    assert time_seconds("04:00:00") == 4 * 3600
    assert time_seconds("1-02") == 86400 + 2 * 3600
    assert time_seconds("2-00:30:15") == 2 * 86400 + 30 * 60 + 15
    with pytest.raises(ConfigError, match="--time"):
        time_seconds("4h")


def test_options_are_checked():
    from amela.config import from_dict

    with pytest.raises(ConfigError, match="signal-delay-s 600 must be shorter"):
        from_dict(SlurmOptions, {"time": "5", "signal_delay_s": 600})
    with pytest.raises(ConfigError, match="unknown option.*gpus for SlurmOptions; valid"):
        from_dict(SlurmOptions, {"gpus": 1})
    with pytest.raises(ConfigError, match="--array-parallelism must be >= 1"):
        from_dict(SlurmOptions, {"array_parallelism": 0})


def test_arrays_are_split_below_max_array_size():
    assert slurm.array_chunks(list(range(5)), 1001) == [(0, [0, 1, 2, 3, 4])]
    chunks = slurm.array_chunks(list(range(2500)), 1000)
    assert [(off, ids[0], ids[-1], len(ids)) for off, ids in chunks] == [(0, 0, 999, 1000), (1000, 0, 999, 1000),
                                                                         (2000, 0, 499, 500)]
    # Resubmitting scattered shards: every shard is offset + task id, task ids stay below the limit.
    todo = [3, 7, 1500, 1502, 4000]
    chunks = slurm.array_chunks(todo, 1001)
    assert sorted(off + t for off, ids in chunks for t in ids) == todo
    assert chunks[0] == (0, [3, 7])  # below the limit, task ids are the shard indices
    assert all(0 <= t < 1001 for _, ids in chunks for t in ids)


def test_submission_maps_tasks_back_to_shards():
    by_offset = slurm.Submission("7", "array", "sbatch", offset=1001)
    assert by_offset.shard_of(4) == 1005 and by_offset.task_of(1005) == 4
    by_list = slurm.Submission("8", "array", "submitit", shards=[2, 9, 11])
    assert by_list.shard_of(1) == 9 and by_list.task_of(11) == 2 and by_list.task_of(3) is None


def test_submitit_parameters_follow_the_same_flags():
    from amela.config import from_dict

    opts = from_dict(SlurmOptions, {"partition": "gpu", "time": "02:00:00", "gpus_per_task": 1, "cpus_per_task": 8,
                                    "array_parallelism": 4, "mem": "32G", "signal_delay_s": 180})
    params = executor_params(opts, ["module load cuda"], ["--constraint=a100"])
    assert params == {"tasks_per_node": 1, "slurm_signal_delay_s": 180, "slurm_partition": "gpu",
                      "slurm_array_parallelism": 4, "gpus_per_node": 1, "cpus_per_task": 8, "slurm_mem": "32G",
                      "timeout_min": 120, "slurm_setup": ["module load cuda"],
                      "slurm_additional_parameters": {"constraint": "a100"}}
