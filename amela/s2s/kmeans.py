"""K-means quantiser: features (T x D) -> unit ids by nearest centroid, in torch (sklearn is never called).

Centroids come from a textlesslib/fairseq k-means pickle (read by compat.read_centroids, shim 5) or a `.npy` K x D
array. Unpickling needs trust: the file's sha256 is published in the model registry, or --trust-pickle.
"""
from __future__ import annotations

from .compat import read_centroids
from .models import Resolved, known_sha256, sha256_of


def load_centroids(resolved: Resolved, trust_pickle: bool = False):
    """K x D float32 numpy centroids; a pickle is read only when its content is known (or trust_pickle)."""
    path = resolved.path
    trusted = trust_pickle or resolved.verified
    if not trusted and not path.endswith(".npy"):
        trusted = known_sha256(sha256_of(path))  # a registry file given by its local path
    return read_centroids(path, trusted)


class KMeansQuantizer:
    def __init__(self, centroids, device: str = "cpu"):
        import torch

        c = torch.as_tensor(centroids, dtype=torch.float32, device=device)
        self.centroids_t = c.t().contiguous()  # D x K
        self.centroid_norms = (c * c).sum(1)  # K
        self.k, self.dim = c.shape

    def __call__(self, feats):
        """(T, D) features -> (T,) long unit ids on the CPU."""
        import torch

        x = feats.to(self.centroids_t.device, torch.float32)
        if x.shape[-1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[-1]} but the k-means centroids {self.dim}: "
                             "is --layer / --kmeans the pair the quantiser was trained for?")
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid, so it is left out.
        dist = self.centroid_norms[None, :] - 2.0 * (x @ self.centroids_t)
        return dist.argmin(dim=1).cpu()


def deduplicate(frame_units) -> tuple[list[int], list[int]]:
    """Run-length encode: ([5, 5, 7, 5] -> ([5, 7, 5], [2, 1, 1]))."""
    units: list[int] = []
    durations: list[int] = []
    for u in (int(v) for v in frame_units):
        if units and units[-1] == u:
            durations[-1] += 1
        else:
            units.append(u)
            durations.append(1)
    return units, durations


def expand(units, durations) -> list[int]:
    """Inverse of deduplicate."""
    if len(units) != len(durations):
        raise ValueError(f"{len(units)} units but {len(durations)} durations")
    out: list[int] = []
    for u, d in zip(units, durations):
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"unit duration must be a positive integer number of frames, got {d!r}")
        out.extend([int(u)] * d)
    return out
