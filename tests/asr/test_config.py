"""Config checks and the refusal to overwrite reference transcripts."""
import pytest

from amela.asr.config import AsrConfig
from amela.asr.stage import AsrStage
from amela.config import from_dict
from amela.errors import ConfigError

RECORDS = [{"audio_filepath": "/a.wav", "duration": 1.0, "text": "reference"},
           {"audio_filepath": "/b.wav", "duration": 1.0}]


def test_records_with_the_text_key_are_refused_unless_overwrite_or_another_key(tiny_models):
    with pytest.raises(ConfigError, match=r"1 of 2 input records already have 'text' \(e.g. /a.wav\).*--overwrite"):
        AsrStage(AsrConfig(model="m.nemo")).check_input(RECORDS)
    AsrStage(AsrConfig(model=tiny_models["ctc"], overwrite=True)).check_input(RECORDS)
    AsrStage(AsrConfig(model=tiny_models["ctc"], text_key="pred_text")).check_input(RECORDS)
    with pytest.raises(ConfigError, match="model file .*m.nemo does not exist"):  # checked before any task starts
        AsrStage(AsrConfig(model="m.nemo", overwrite=True)).check_input(RECORDS)


@pytest.mark.parametrize("options, message", [
    ({}, "missing required option"),
    ({"model": "m.nemo", "text_key": "duration"}, "not allowed"),
    ({"model": "m.nemo", "batch_s": 0}, "batch_s must be > 0"),
    ({"model": "m.nemo", "max_s": 1}, "max_s must be >= 2"),
    ({"model": "m.nemo", "cut_search_s": 50}, "cut_search_s"),
    ({"model": "m.nemo", "channel_selector": "left"}, "channel_selector"),
    ({"model": "m.nemo", "salm_prompt": "Transcribe"}, "{audio}"),
    ({"model": "m.nemo", "device": "tpu"}, "device must be one of"),
    ({"model": "m.nemo", "batch_secs": 3}, "unknown option"),
])
def test_bad_options_fail_loudly(options, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(AsrConfig, options)


def test_channel_selector_parses_an_index():
    assert from_dict(AsrConfig, {"model": "m.nemo", "channel_selector": "1"}).channel == 1
    assert from_dict(AsrConfig, {"model": "m.nemo"}).channel is None


def test_channel_selector_is_a_deprecated_alias_of_channel(caplog):
    with caplog.at_level("WARNING", logger="amela"):
        cfg = from_dict(AsrConfig, {"model": "m.nemo", "channel_selector": "1"})
    assert "channel_selector is deprecated" in caplog.text and "use channel 1" in caplog.text
    assert (cfg.channel, cfg.channel_selector) == (1, None)  # config.yaml then holds only channel
    assert from_dict(AsrConfig, {"model": "m.nemo", "channel_selector": "average"}).channel is None
    assert from_dict(AsrConfig, {"model": "m.nemo", "channel": 2, "channel_selector": "2"}).channel == 2
    with pytest.raises(ConfigError, match="disagree"):
        from_dict(AsrConfig, {"model": "m.nemo", "channel": 0, "channel_selector": "1"})
