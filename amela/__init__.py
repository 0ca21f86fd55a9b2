"""AMELA: speech processing over JSONL manifests on SLURM clusters."""


def submit(stage, manifest, run_dir, shards: int = 1, **kwargs):
    """Run `stage` over `manifest` as a SLURM job array through submitit; returns the jobs' handles.

    See amela.executors.submitit.submit for the arguments (imported here, on first use, to keep `import amela` light).
    """
    from .executors.submitit import submit as _submit

    return _submit(stage, manifest, run_dir, shards, **kwargs)


__all__ = ["submit"]
