"""A tests-only stage whose speed is known: it sleeps a fixed time per second of audio, after a fixed set-up time
(its "model load"). So a run's compute time is predictable from the manifest, whatever else loads the machine."""
from __future__ import annotations

import time
from dataclasses import dataclass

from amela.config import option
from amela.stage import Stage


@dataclass(frozen=True)
class PacedConfig:
    sleep_per_audio_s: float = option(0.05, "seconds slept per second of audio")
    setup_s: float = option(1.0, "seconds slept in setup(), as a model load")
    batch_size: int = option(1, "items per batch")


class PacedStage(Stage):
    name = "paced"
    config_cls = PacedConfig
    description = "tests-only stage: sleeps sleep_per_audio_s per audio second (known throughput)"

    def setup(self) -> None:
        time.sleep(self.config.setup_s)

    def process_one(self, record):
        time.sleep(self.config.sleep_per_audio_s * record["duration"])
        return {**record, "paced_s": self.config.sleep_per_audio_s * record["duration"]}
