"""A tests-only stage for the hostile suite: the echo stage, accepting directories, and able to read its file
(so that a FIFO, or a worker stopped mid-item, really blocks it)."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from amela.config import option
from tests.support.stages import EchoConfig, EchoStage


@dataclass(frozen=True)
class FileConfig(EchoConfig):
    read_file: bool = option(False, "open and read each item's file (a FIFO blocks here)")
    stop_on: tuple[str, ...] = option((), "basenames whose worker stops itself with SIGSTOP")


class FileStage(EchoStage):
    name = "echo"
    config_cls = FileConfig
    accepts_directory = True

    def process_one(self, record):
        name = os.path.basename(record["audio_filepath"])
        if name in self.config.stop_on:
            os.kill(os.getpid(), signal.SIGSTOP)
        if self.config.read_file:
            with open(record["audio_filepath"], "rb") as fh:
                fh.read()
        return super().process_one(record)
