"""The S2S model zoo: textlesslib's names, each file's URL and sha256; the cache; `amela fetch-models s2s`.

Downloads go to $AMELA_CACHE/s2s (default ~/.cache/amela/s2s), created on the first download, never at import.
Tasks run offline: a name that is not in the cache is an error that says which fetch command to run. Every cached
file is checked against its sha256 (once per file version: a `.verified` stamp records size and mtime).
Light module: no torch, no network at import.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..hashing import file_sha256
from ..runtime import CACHE_ENV

_FB = "https://dl.fbaipublicfiles.com"


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    filename: str
    sha256: str | None  # None: not published; a pickle from it needs --trust-pickle
    kind: str  # dense | kmeans | vocoder | vocoder-config | speakers | styles
    companions: tuple[str, ...] = ()  # names fetched along with this one (a vocoder's config)


def _f(name, url, filename, sha256, kind, companions=()):
    return ModelFile(name, url, filename, sha256, kind, tuple(companions))


# sha256 values as published in textlesslib's checkpoint manager; the mHuBERT vocoder comes from fairseq's
# speech_to_speech docs, which publish no checksum.
_FILES = [
    _f("hubert-base-ls960", f"{_FB}/hubert/hubert_base_ls960.pt", "hubert_base_ls960.pt",
       "1703cf8d2cdc76f8c046f5f6a9bcd224e0e6caf4744cad1a1f4199c32cac8c8d", "dense"),
    _f("mhubert-base-vp_en_es_fr", f"{_FB}/hubert/mhubert_base_vp_en_es_fr_it3.pt", "mhubert_base_vp_en_es_fr_it3.pt",
       "23527cd6311a6617bfa199f574e2eed478cd6a58a634f4007165c10ec0019832", "dense"),
    _f("mhubert-base-25hz", f"{_FB}/textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
       "mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
       "edf0f5be2581a568a236aeb2781a5607c5af25806e12f40f7f2391e861fe3cf0", "dense"),
    _f("hubert-base-ls960-kmeans-50", f"{_FB}/textless_nlp/gslm/hubert/km50/km.bin", "hubert_base_ls960_km50.bin",
       "d01a7d5bc2c54b7b5f25f321ba525b4d230b06e3927f90bad0394198bc89f494", "kmeans"),
    _f("hubert-base-ls960-kmeans-100", f"{_FB}/textless_nlp/gslm/hubert/km100/km.bin", "hubert_base_ls960_km100.bin",
       "f14a3104615485381fc489701d6761c9abbdbb0d43607cf55518a1e2891023fe", "kmeans"),
    _f("hubert-base-ls960-kmeans-200", f"{_FB}/textless_nlp/gslm/hubert/km200/km.bin", "hubert_base_ls960_km200.bin",
       "b3c46c9cdd1707ad852dd53c359aa73942e79d53c432a9a8a419ed046408024b", "kmeans"),
    _f("hubert-base-ls960-kmeans-500", f"{_FB}/textless_nlp/gslm/hubert/km500/km.bin", "hubert_base_ls960_km500.bin",
       "411c8668e1314751404f58636f935fc73540a6793890435da4a8ffadf157398e", "kmeans"),
    _f("mhubert-base-vp_en_es_fr-layer-11-kmeans-1000", f"{_FB}/hubert/mhubert_base_vp_en_es_fr_it3_L11_km1000.bin",
       "mhubert_base_vp_en_es_fr_it3_L11_km1000.bin",
       "c70f5416c38044d0c20e33fdeedf4533974a8ac4029985cdef3b755038381a0b", "kmeans"),
    _f("mhubert-base-vp_en_es_fr-layer-11-kmeans-1000-hifigan",
       f"{_FB}/fairseq/speech_to_speech/vocoder/code_hifigan/mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj/g_00500000",
       "mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_g_00500000.pt", None, "vocoder",
       ["mhubert-base-vp_en_es_fr-layer-11-kmeans-1000-hifigan-config"]),
    _f("mhubert-base-vp_en_es_fr-layer-11-kmeans-1000-hifigan-config",
       f"{_FB}/fairseq/speech_to_speech/vocoder/code_hifigan/mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj/config.json",
       "mhubert_vp_en_es_fr_it3_400k_layer11_km1000_lj_config.json", None, "vocoder-config"),
    _f("mhubert-base-25hz-kmeans-500",
       f"{_FB}/textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin",
       "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin",
       "03cc04a9c24fec4285e73e709c485756d8f116aa8e724eac555de6a7cf8d28ad", "kmeans"),
    _f("mhubert-base-25hz-kmeans-500-hifigan",
       f"{_FB}/textless_nlp/twist/speech_tokenizer/hifigan_lj_mhubert_base_25hz.pt", "hifigan_lj_mhubert_base_25hz.pt",
       "d88224e95c501e2cd59a6e4014753169cfe060fb7ade3cc0da03c809fef73b79", "vocoder",
       ["mhubert-base-25hz-kmeans-500-hifigan-config"]),
    _f("mhubert-base-25hz-kmeans-500-hifigan-config",
       f"{_FB}/textless_nlp/twist/speech_tokenizer/hifigan_lj_mhubert_base_25hz_config.json",
       "hifigan_lj_mhubert_base_25hz_config.json",
       "116dc39be4970cd393e562acd0a0ec70a86aaba7e9ca469b8b836cb3fe46afc7", "vocoder-config"),
    _f("hubert-base-ls960-layer-9-kmeans-expresso-2000",
       f"{_FB}/textless_nlp/expresso/checkpoints/hubert_base_ls960_L9_km2000_expresso.bin",
       "hubert_base_ls960_L9_km2000_expresso.bin",
       "ae73e3cc7ea0426faf43c8bb67fc3846a0f8708232526d045a101836e8c7929f", "kmeans"),
]
_EXPRESSO = f"{_FB}/textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso"
_EX = "hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan"
_FILES += [
    _f(_EX, f"{_EXPRESSO}/generator.pt", "hifigan_expresso_hubert_base_ls960_L9_km2000_generator.pt",
       "b892fdcca889f4bc6d7f0a0f407ae5d01eca8aaa66b9be333ef33a1c50f2ef52", "vocoder",
       [f"{_EX}-config", f"{_EX}-speakers", f"{_EX}-styles"]),
    _f(f"{_EX}-config", f"{_EXPRESSO}/config.json", "hifigan_expresso_hubert_base_ls960_L9_km2000_config.json",
       "73932563cedc43cd1dcddfab36ce3b2c3cb76eef3423d25d1fb536ce1ec513bb", "vocoder-config"),
    _f(f"{_EX}-speakers", f"{_EXPRESSO}/speakers.txt", "hifigan_expresso_hubert_base_ls960_L9_km2000_speakers.txt",
       "2efabb7a4ad786da34fe6fbe99c3906b7abd40b2e01c81b7efde76142ae3d552", "speakers"),
    _f(f"{_EX}-styles", f"{_EXPRESSO}/styles.txt", "hifigan_expresso_hubert_base_ls960_L9_km2000_styles.txt",
       "a6f63206518448277c63c3a251ac13484784829cf2e1b0a23b0860dd32543520", "styles"),
]
REGISTRY: dict[str, ModelFile] = {f.name: f for f in _FILES}

# What the original AMELA used: mHuBERT layer 11, 1000 units, the LJSpeech unit HiFi-GAN.
DEFAULT_DENSE = "mhubert-base-vp_en_es_fr"
DEFAULT_LAYER = 11
DEFAULT_KMEANS = "mhubert-base-vp_en_es_fr-layer-11-kmeans-1000"
DEFAULT_VOCODER = "mhubert-base-vp_en_es_fr-layer-11-kmeans-1000-hifigan"


class ModelFileError(ConfigError):
    """A model file is missing from the cache, corrupt, or fails its sha256 check."""


def cache_root(cache_dir: str | None = None) -> Path:
    """Where S2S model files live; not created here (only a download creates it)."""
    base = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "amela")
    return Path(base).expanduser() / "s2s"


sha256_of = file_sha256  # the name S2S code and tests use


def known_sha256(digest: str, registry: dict[str, ModelFile] | None = None) -> bool:
    return any(f.sha256 == digest for f in (registry or REGISTRY).values())


@dataclass(frozen=True)
class Resolved:
    """A model file on disk and whether its content matches a published sha256."""

    path: str
    verified: bool
    entry: ModelFile | None = None


def resolve(name_or_path: str, kind: str, cache_dir: str | None = None,
            registry: dict[str, ModelFile] | None = None) -> Resolved:
    """A registry name (must be in the cache: tasks never download) or an existing local path."""
    registry = registry or REGISTRY
    entry = registry.get(name_or_path)
    if entry is None:
        path = os.path.abspath(os.path.expanduser(name_or_path))
        if not os.path.isfile(path):
            names = ", ".join(n for n, f in registry.items() if f.kind == kind)
            raise ModelFileError(f"{kind} model {name_or_path!r}: neither a file nor a known name (known: {names})")
        return Resolved(path, False)
    if entry.kind != kind:
        raise ModelFileError(f"{name_or_path!r} is a {entry.kind} file, not a {kind} model")
    path = cache_root(cache_dir) / entry.filename
    if not path.is_file():
        raise ModelFileError(
            f"{kind} model {entry.name!r} is not in the cache ({path}); tasks run offline: fetch it first with "
            f"`amela fetch-models s2s {entry.name}` (set ${CACHE_ENV} or --cache-dir to the same directory)"
        )
    return Resolved(str(path), verify(path, entry), entry)


def verify(path: Path, entry: ModelFile) -> bool:
    """True when `path` matches entry.sha256 (False when none is published); raises on a mismatch."""
    if entry.sha256 is None:
        return False
    st = path.stat()
    stamp = path.with_name(path.name + ".verified")
    expected = f"{entry.sha256} {st.st_size} {st.st_mtime_ns}"
    try:
        if stamp.read_text() == expected:
            return True
    except OSError:
        pass
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise ModelFileError(
            f"{path}: sha256 mismatch for {entry.name!r} (expected {entry.sha256}, file has {digest}); the file is "
            f"corrupt or truncated: delete it and run `amela fetch-models s2s {entry.name}` again"
        )
    try:
        from ..manifest import write_text_atomic

        write_text_atomic(stamp, expected)
    except OSError:  # a read-only cache is fine: we just hash again next time
        pass
    return True


def expand(names: list[str], registry: dict[str, ModelFile] | None = None) -> list[ModelFile]:
    """Registry entries for `names` plus their companions (a vocoder's config), each once, in order."""
    registry = registry or REGISTRY
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ModelFileError(f"unknown S2S model name(s): {', '.join(unknown)}; known: {', '.join(registry)}")
    out: dict[str, ModelFile] = {}
    for n in names:
        for m in (n, *registry[n].companions):
            out.setdefault(m, registry[m])
    return list(out.values())


def fetch_models(names: list[str], cache_dir: str | None = None,
                 registry: dict[str, ModelFile] | None = None) -> list[str]:
    """Download `names` (and companions) into the cache, verified; files already there and valid are kept.
    Returns the local paths. `amela fetch-models s2s NAME...` calls this before an array is submitted."""
    import logging

    log = logging.getLogger("amela.s2s")
    paths = []
    for entry in expand(list(names) or [DEFAULT_DENSE, DEFAULT_KMEANS, DEFAULT_VOCODER], registry):
        dest = cache_root(cache_dir) / entry.filename
        if dest.is_file():
            try:
                verify(dest, entry)
                paths.append(str(dest))
                continue
            except ModelFileError as exc:
                log.warning("%s; downloading it again", exc)
        log.info("fetching %s from %s", entry.name, entry.url)
        _download(entry, dest)
        paths.append(str(dest))
    return paths


def cache_report(names: list[str], cache_dir: str | None = None) -> tuple[list[str], int]:
    """Lines saying what is cached where (the whole zoo when `names` is empty), and how many named files are missing."""
    root = cache_root(cache_dir)
    lines = [f"cache: {root}"]
    missing = 0
    for entry in expand(list(names)) if names else list(REGISTRY.values()):
        path = root / entry.filename
        if path.is_file():
            lines.append(f"cached   {entry.name}  {path}  ({path.stat().st_size / 1e9:.2f} GB)")
        else:
            missing += bool(names)
            lines.append(f"missing  {entry.name}  (would be {path}): amela fetch-models s2s {entry.name}")
    return lines, missing


def _download(entry: ModelFile, dest: Path) -> None:
    """Stream to a temporary file beside `dest`, hashing as we go; rename only when the sha256 matches."""
    import tempfile

    from ..manifest import executable_mode

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.fchmod(fd, executable_mode() & 0o666)  # a shared model cache: the umask's mode, not mkstemp's 0600
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if entry.sha256 is not None and h.hexdigest() != entry.sha256:
            raise ModelFileError(f"{entry.url}: downloaded file has sha256 {h.hexdigest()}, expected {entry.sha256}")
        os.replace(tmp, dest)
    except OSError as exc:
        raise ModelFileError(f"{entry.name}: download from {entry.url} failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if entry.sha256 is not None:
        verify(dest, entry)  # writes the stamp


def describe() -> list[str]:
    """One line per registry entry, for docs and `--help`-style listings."""
    return [f"{f.name}  [{f.kind}]  sha256={f.sha256 or 'unpublished'}" for f in REGISTRY.values()]
