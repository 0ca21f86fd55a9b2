"""`amela plan`: size a job before submitting it.

A duration-stratified pilot sample of the input runs through the stage (locally, or as one SLURM task on the real
node), which measures the stage's throughput and its fixed start-up cost; `sizing` turns them, the corpus's total
audio and the partition's limits into a shard count, a `--time` per task, GPU hours and wall time, and `cli` prints
them with the `amela run` command to submit. The pilot is an ordinary run directory (prepare, run, merge).
"""
