"""A stage that lives in tests only: it exercises the runner and executors without any model.

It can sleep (to be interrupted), fail an item with an exception, and kill its own worker in the ways native
libraries do (SIGSEGV, SIGBUS, SIGKILL, os._exit), on the items named in its config.
"""
from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass

from amela.config import option
from amela.errors import ConfigError, ItemError
from amela.stage import Output, Stage


@dataclass(frozen=True)
class EchoConfig:
    sleep_s: float = option(0.0, "seconds to sleep per item")
    batch_size: int = option(4, "items per batch")
    fail_on: tuple[str, ...] = option((), "basenames whose item raises an error")
    segv_on: tuple[str, ...] = option((), "basenames that crash the worker with a real SIGSEGV")
    kill_on: tuple[str, ...] = option((), "basenames that SIGKILL the worker")
    exit_on: tuple[str, ...] = option((), "basenames that make the worker os._exit(3)")
    crash_once_dir: str | None = option(None, "if set, a crash happens only the first time (marker files here)")
    require_file: bool = option(False, "fail items whose audio_filepath does not exist")
    write_files: bool = option(False, "write one small file per item through the sink")
    pieces: int = option(0, "records per item in the 'pieces' stream")

    def check(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")


class EchoStage(Stage):
    name = "echo"
    config_cls = EchoConfig
    streams = {"pieces": "pieces"}
    description = "tests-only stage: echoes records, can fail or crash on chosen items"

    def setup(self) -> None:
        self.stat_update("setups")

    def process_one(self, record):
        name = os.path.basename(record["audio_filepath"])
        self._maybe_crash(name)
        if self.config.require_file and not os.path.exists(record["audio_filepath"]):
            raise ItemError(f"{record['audio_filepath']}: no such file")
        if name in self.config.fail_on:
            raise ItemError(f"{record['audio_filepath']}: asked to fail")
        if self.config.sleep_s:
            time.sleep(self.config.sleep_s)
        self.stat_update("items_processed")
        out = {**record, "echo": name.upper()}
        if self.config.write_files:
            out["file"] = self.sink.write_bytes(f"{name}.txt", name.encode())
        pieces = [{"audio_filepath": record["audio_filepath"], "piece": k} for k in range(self.config.pieces)]
        return Output(out, {"pieces": pieces}) if pieces else out

    def _maybe_crash(self, name: str) -> None:
        kind = next((k for k in ("segv", "kill", "exit") if name in getattr(self.config, f"{k}_on")), None)
        if kind is None:
            return
        if self.config.crash_once_dir:
            marker = os.path.join(self.config.crash_once_dir, name)
            if os.path.exists(marker):
                return
            open(marker, "w").close()
        if kind == "segv":
            ctypes.string_at(0)  # a real segmentation fault in native code
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            os._exit(3)

    def summary(self, outputs):
        return {"echoed": sum(1 for _ in outputs())}

    def reports(self, outputs):
        return {"echo_report.txt": "\n".join(r["echo"] for r in outputs()).encode()}
