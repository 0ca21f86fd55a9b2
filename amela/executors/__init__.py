"""Executors decide only *where* the runner runs a shard: here (local pool), an sbatch array, or submitit."""
