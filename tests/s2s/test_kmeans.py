"""Shim 5 (k-means pickles), the torch quantiser, and unit run-length coding."""
from __future__ import annotations

import pickle
import sys
import types

import joblib
import numpy as np
import pytest
import torch

from amela.s2s.compat import read_centroids
from amela.s2s.kmeans import KMeansQuantizer, deduplicate, expand, load_centroids
from amela.s2s.models import Resolved


def test_centroids_from_joblib_pickle_and_npy(tiny):
    expected = tiny.km.cluster_centers_.astype(np.float32)
    np.testing.assert_array_equal(read_centroids(tiny.km_pickle, trusted=True), expected)
    np.testing.assert_array_equal(read_centroids(tiny.km_npy, trusted=False), expected)


def test_compressed_and_plain_pickles(tiny, tmp_path):
    for compress in (3, "gzip", "bz2", "xz"):
        path = tmp_path / f"km_{compress}.bin"
        joblib.dump(tiny.km, path, compress=compress)
        np.testing.assert_array_equal(read_centroids(str(path), True), tiny.km.cluster_centers_)
    for protocol in (0, 2, 5):
        path = tmp_path / f"km_p{protocol}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(tiny.km, fh, protocol=protocol)
        np.testing.assert_array_equal(read_centroids(str(path), True), tiny.km.cluster_centers_)


def test_pickle_naming_a_module_current_sklearn_lacks(tmp_path):
    """sklearn <= 0.21 pickled MiniBatchKMeans from sklearn.cluster.k_means_, which no longer exists."""
    legacy = types.ModuleType("sklearn.cluster.k_means_")

    class MiniBatchKMeans:
        pass

    MiniBatchKMeans.__module__ = legacy.__name__
    MiniBatchKMeans.__qualname__ = "MiniBatchKMeans"
    legacy.MiniBatchKMeans = MiniBatchKMeans
    km = MiniBatchKMeans()
    km.cluster_centers_ = np.arange(12, dtype=np.float32).reshape(3, 4)
    km.n_clusters = 3
    sys.modules[legacy.__name__] = legacy
    try:
        joblib.dump(km, tmp_path / "old.bin")
    finally:
        del sys.modules[legacy.__name__]
    with pytest.raises(ModuleNotFoundError, match="k_means_"):
        joblib.load(tmp_path / "old.bin")
    np.testing.assert_array_equal(read_centroids(str(tmp_path / "old.bin"), True), km.cluster_centers_)


def test_untrusted_pickle_is_refused(tiny):
    with pytest.raises(PermissionError, match="--trust-pickle"):
        load_centroids(Resolved(tiny.km_pickle, verified=False))
    assert load_centroids(Resolved(tiny.km_pickle, verified=False), trust_pickle=True).shape == (12, 32)
    assert load_centroids(Resolved(tiny.km_npy, verified=False)).shape == (12, 32)


def test_object_arrays_and_non_centroids_are_refused(tiny, tmp_path):
    obj = tmp_path / "obj.bin"
    joblib.dump({"cluster_centers_": np.array([[1.0, 2.0]], dtype=object)}, obj)
    with pytest.raises(ValueError, match="obj.bin"):
        read_centroids(str(obj), True)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="K x D"):
        read_centroids(str(flat), False)


def test_quantiser_matches_sklearn_predict(tiny):
    feats = torch.randn(500, 32) * 2
    centroids = read_centroids(tiny.km_npy, False)
    units = KMeansQuantizer(centroids)(feats)
    assert units.tolist() == tiny.km.predict(feats.numpy()).tolist()


def test_quantiser_rejects_wrong_dimension(tiny):
    with pytest.raises(ValueError, match="dimension 16"):
        KMeansQuantizer(read_centroids(tiny.km_npy, False))(torch.zeros(3, 16))


@pytest.mark.parametrize("frames,units,durations", [
    ([], [], []),
    ([4], [4], [1]),
    ([5, 5, 7, 5], [5, 7, 5], [2, 1, 1]),
    ([1, 1, 1, 2, 2, 1], [1, 2, 1], [3, 2, 1]),
])
def test_deduplicate_and_expand(frames, units, durations):
    assert deduplicate(frames) == (units, durations)
    assert expand(units, durations) == frames


def test_dedup_roundtrip_on_random_sequences():
    rng = np.random.RandomState(0)
    for _ in range(50):
        frames = rng.randint(0, 4, size=rng.randint(1, 60)).tolist()
        units, durations = deduplicate(frames)
        assert all(a != b for a, b in zip(units, units[1:]))  # no two equal neighbours remain
        assert sum(durations) == len(frames)
        assert expand(units, durations) == frames


def test_expand_rejects_bad_durations():
    with pytest.raises(ValueError, match="positive integer"):
        expand([1, 2], [1, 0])
    with pytest.raises(ValueError, match="2 units but 1 durations"):
        expand([1, 2], [1])
