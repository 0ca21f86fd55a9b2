"""AMELA: speech processing over JSONL manifests on SLURM clusters."""
