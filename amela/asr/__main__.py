"""`python -m amela.asr INPUT -o RUN_DIR --model M ...` is `amela run asr INPUT -o RUN_DIR --model M ...`."""
from amela.cli import stage_main

raise SystemExit(stage_main("asr"))
