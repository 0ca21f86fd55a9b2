"""SALM (speechlm2) through the stage, with a tiny SALM built offline (random weights, BPE tokenizer trained here)."""
import pytest

from amela.asr.config import AsrConfig
from amela.asr.stage import AsrStage
from amela.audio import read_span

from .conftest import RATE, noise, write_wav

pytest.importorskip("peft", reason="speechlm2 imports peft: pip install peft")


@pytest.fixture(scope="module")
def salm_dir(tmp_path_factory):
    from amela.asr.tiny import save_tiny_salm

    return save_tiny_salm(str(tmp_path_factory.mktemp("tiny_salm")))


def test_salm_transcribes_through_generate_in_order_and_cuts_long_audio(salm_dir, corpus, tmp_path):
    stage = AsrStage(AsrConfig(model=salm_dir, device="cpu", batch_s=10.0, max_new_tokens=8, max_s=20.0,
                               salm_prompt="Repeat: {audio}"))
    stage.setup()
    assert type(stage.backend).__name__ == "SalmBackend"
    long_path = write_wav(tmp_path / "long.wav", noise(45.0, 3))
    records = corpus[:4] + [{"audio_filepath": long_path, "duration": 45.0, "split_points": [15.0, 30.0]}]
    results = [None] * len(records)
    for positions in stage.batches(records):
        for p, o in zip(positions, stage.process([records[p] for p in positions])):
            results[p] = o
    alone = [stage.backend.transcribe([read_span(r, RATE)])[0].text for r in records[:4]]
    assert [r["text"] for r in results[:4]] == alone
    long = read_span(records[4], RATE)
    pieces = [long[: 15 * RATE], long[15 * RATE: 30 * RATE], long[30 * RATE:]]
    assert results[4]["asr_pieces"] == 3
    assert results[4]["text"] == " ".join(t for t in (stage.backend.transcribe([p])[0].text for p in pieces) if t)
    # The configured prompt is what generate() receives, with the model's audio placeholder in it.
    seen = []
    generate = stage.backend.model.generate
    stage.backend.model.generate = lambda **kw: seen.append(kw["prompts"]) or generate(**kw)
    stage.process(records[:2])
    tag = stage.backend.model.audio_locator_tag
    assert seen and all(p == [{"role": "user", "content": f"Repeat: {tag}"}] for p in seen[0])
