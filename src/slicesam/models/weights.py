"""The weights files slicesam can download: where from and how they are checked.

One table shared by the registry (what ``slicesam models`` lists), the downloader and the
checkpoint loaders (which refuse another model's official file). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError


@dataclass(frozen=True)
class Weights:
    """A downloadable weights file.

    Attributes:
        filename: the name it has in the cache folder (the publisher's name).
        url: the official download address.
        sha256: the published sha256, or None where none is published: the hash of the first
            file fetched into / loaded from the cache folder is then recorded and enforced.
        sha256_source: where ``sha256`` comes from (or why there is none).
        size_mb: approximate size, for the listing.
    """

    filename: str
    url: str
    sha256: str | None
    sha256_source: str
    size_mb: int


_SAM_RELEASES = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM_HASH_SOURCE = "published with the segment-anything release"
_TOFU = "none published: the sha256 of the first file fetched or loaded is recorded and enforced"


def _sam_weights(filename: str, sha256: str, size_mb: int) -> Weights:
    return Weights(filename, _SAM_RELEASES + filename, sha256, _SAM_HASH_SOURCE, size_mb)


WEIGHTS: dict[str, Weights] = {
    "sam_vit_b": _sam_weights(
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        358,
    ),
    "sam_vit_l": _sam_weights(
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1250,
    ),
    "sam_vit_h": _sam_weights(
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2564,
    ),
    "medsam": Weights(
        "medsam_vit_b.pth",
        "https://zenodo.org/records/10689643/files/medsam_vit_b.pth?download=1",
        None,
        _TOFU,
        358,
    ),
    "mobilesam": Weights(
        "mobile_sam.pt",
        "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        None,
        _TOFU,
        39,
    ),
}


def weights_for(name: str) -> Weights:
    """The downloadable weights file of model ``name``.

    Raises:
        ModelError: ``name`` has no weights file to download (shipped in a package, or a
            classical backend, or no model at all).
    """
    weights = WEIGHTS.get(name)
    if weights is None:
        raise ModelError(
            f"model {name!r} has no weights file to fetch (models that have one: "
            f"{', '.join(WEIGHTS)})"
        )
    return weights


def official_model_for(digest: str) -> str | None:
    """The model name whose published weights have sha256 ``digest``, or None."""
    for name, weights in WEIGHTS.items():
        if weights.sha256 is not None and weights.sha256 == digest:
            return name
    return None
