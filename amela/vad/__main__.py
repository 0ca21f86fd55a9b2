"""`python -m amela.vad INPUT -o RUN_DIR ...` is `amela run vad INPUT -o RUN_DIR ...`."""
from amela.cli import stage_main

raise SystemExit(stage_main("vad"))
