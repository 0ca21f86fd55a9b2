"""`amela doctor`: is this machine ready? Each check prints ok/problem and, for a problem, the fix."""
from __future__ import annotations

import platform
import sys

from .stage import REGISTRY, load_stage


def _python() -> list[tuple[str, bool, str]]:
    ok = sys.version_info >= (3, 10)
    return [("python", ok, platform.python_version() if ok else "AMELA needs Python >= 3.10: create the venv with a "
                                                                 "newer python (e.g. `module load python/3.11`)")]


def _torch() -> list[tuple[str, bool, str]]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return [("torch", False, f"{exc}; run scripts/setup.sh (installs torch==2.13.0 first)")]
    checks = [("torch", True, f"{torch.__version__} (threads: {torch.get_num_threads()})")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            checks.append((f"gpu {i}", True, f"{torch.cuda.get_device_name(i)}, {free / 2**30:.1f} of "
                                              f"{total / 2**30:.1f} GiB free"))
    else:
        checks.append(("gpu", True, "none visible (CPU only; ASR/S2S run on CPU, slowly; on a cluster request "
                                    "--gpus-per-task 1)"))
    return checks


def checks() -> list[tuple[str, bool, str]]:
    out = _python() + _torch()
    for name in REGISTRY:
        try:
            stage_checks = load_stage(name).doctor()
        except Exception as exc:  # noqa: BLE001 - a stage that cannot even load is itself a finding
            stage_checks = [(f"{name} stage", False, f"cannot load: {exc}")]
        out += [(f"{name}: {what}", ok, detail) for what, ok, detail in stage_checks]
    return out


def run_doctor() -> int:
    results = checks()
    width = max(len(what) for what, _, _ in results)
    for what, ok, detail in results:
        print(f"{'ok ' if ok else 'FIX'}  {what:<{width}}  {detail}")
    problems = sum(not ok for _, ok, _ in results)
    print(f"{problems} problem(s)" if problems else "all checks passed")
    return 0 if not problems else 1
