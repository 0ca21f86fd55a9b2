"""Tests-only stage with a fault that fails a whole shard (not just an item) while a flag file exists.

The shard's task then exits non-zero with a traceback in its log, as a real crash of the runner would; removing the
flag file "fixes" it, so rerunning only that task completes the run."""
from __future__ import annotations

import os
from dataclasses import dataclass

from amela.config import option
from tests.support.stages import EchoConfig, EchoStage


@dataclass(frozen=True)
class FaultyConfig(EchoConfig):
    fault_on: tuple[str, ...] = option((), "basenames: the shard holding one of them fails while fault_flag exists")
    fault_flag: str | None = option(None, "the file whose existence arms the fault")


class FaultyEchoStage(EchoStage):
    name = "faulty"
    config_cls = FaultyConfig
    description = "tests-only stage: echo, and a whole shard fails while a flag file exists"

    def batches(self, records):
        armed = self.config.fault_flag and os.path.exists(self.config.fault_flag)
        hit = [r["audio_filepath"] for r in records if os.path.basename(r["audio_filepath"]) in self.config.fault_on]
        if armed and hit:
            raise RuntimeError(f"injected fault for {hit[0]} (remove {self.config.fault_flag} to fix)")
        return super().batches(records)
