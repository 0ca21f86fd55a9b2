"""A tests-only VAD stage that crashes its worker with a real SIGSEGV in the middle of a chosen file's stream, where
the native library runs: the worker-crash test injects its fault here, not through production code."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from amela.config import option
from amela.vad.config import VadConfig
from amela.vad.stage import VadStage


@dataclass(frozen=True)
class CrashingVadConfig(VadConfig):
    crash_on: str | None = option(None, "basename of the file whose first audio block crashes the worker")


class CrashingVadStage(VadStage):
    config_cls = CrashingVadConfig

    def process_one(self, record: dict):
        if os.path.basename(record["audio_filepath"]) == self.config.crash_on:
            self.vad.feed = lambda block: ctypes.string_at(0)  # a real segmentation fault; the worker dies here
        return super().process_one(record)
