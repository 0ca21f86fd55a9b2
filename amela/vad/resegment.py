"""ResegmentStage: VAD outputs from stored probabilities (`amela vad resegment`), without audio or model.

Its input records are a VAD run's output records stripped back to their input fields, each with `probs_ref` (file,
pos, size, dtype, duration_s, offset_s: where its probabilities lie; amela/vad/stored.py builds them). It hands the
probabilities to VadStage.results(), the code a full run uses, so float32 probabilities give exactly a full rerun's
outputs.
"""
from __future__ import annotations

import time

from ..errors import ItemError
from .stage import VadStage

REF_KEY = "probs_ref"


class ResegmentStage(VadStage):
    name = "vad"  # the outputs are a VAD run's: vad.jsonl, vad_segments.jsonl, vad_stats.csv, ...
    description = "VAD outputs rebuilt from stored probabilities (amela vad resegment)"

    def setup(self) -> None:
        pass  # no model

    def teardown(self) -> None:
        pass

    def process_one(self, record: dict):
        from .probs import decode

        t0 = time.perf_counter()
        ref = record[REF_KEY]
        try:
            with open(ref["file"], "rb") as fh:  # an input file, like audio: no runner involved
                fh.seek(ref["pos"])
                data = fh.read(ref["size"])
            if len(data) != ref["size"]:
                raise OSError(f"{ref['file']}: {ref['size']} bytes expected at {ref['pos']}, found {len(data)}")
            probs = decode(data, ref["dtype"])
        except OSError as exc:
            raise ItemError(f"{record['audio_filepath']}: cannot read its stored probabilities: {exc}") from None
        source = {k: v for k, v in record.items() if k != REF_KEY}
        self.count_file(ref["duration_s"], 0.0, time.perf_counter() - t0, len(probs))
        return self.results(source, probs, ref["duration_s"], ref["offset_s"])


