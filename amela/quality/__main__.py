"""`python -m amela.quality INPUT -o RUN_DIR ...` is `amela run quality INPUT -o RUN_DIR ...`."""
from amela.cli import stage_main

raise SystemExit(stage_main("quality"))
