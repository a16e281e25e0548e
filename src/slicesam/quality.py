"""Quality checks and post-processing of one object's 3D mask (numpy/scipy/scikit-image only).

All masks are (z, y, x) bool arrays; spacing is (z, y, x) in the volume's unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

#: 3D connectivity used for components and holes: faces, edges and corners (26 neighbours).
STRUCTURE_3D = np.ones((3, 3, 3), dtype=bool)
STRUCTURE_2D = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ObjectStats:
    """What a reviewer checks about an object.

    Attributes:
        voxels: number of voxels.
        volume: physical volume in ``volume_unit``.
        volume_unit: "mL" for volumes in mm, "µm³" for µm, else the unit cubed.
        components: 3D connected components (26-connectivity); 1 for a clean object.
        largest_fraction: share of the voxels in the largest component.
        holes: enclosed background cavities in 3D (not connected to the volume's outside).
        hole_voxels: voxels in those cavities.
        compactness: sphericity in (0, 1]: pi^(1/3) (6 V)^(2/3) / surface area (1 for a
            ball; low for ragged or thin objects); 0 for an empty mask.
        z_extent: (first, last) slice with voxels, or None when empty.
        slices: number of slices with voxels.
        slice_gaps: empty slices between the first and the last one.
    """

    voxels: int
    volume: float
    volume_unit: str
    components: int
    largest_fraction: float
    holes: int
    hole_voxels: int
    compactness: float
    z_extent: tuple[int, int] | None
    slices: int
    slice_gaps: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.voxels == 0:
            return "empty"
        parts = [
            f"{self.volume:.4g} {self.volume_unit} ({self.voxels} voxels)",
            f"slices {self.z_extent[0]}-{self.z_extent[1]}",  # type: ignore[index]
            f"{self.components} component{'s' if self.components != 1 else ''}",
            f"{self.holes} hole{'s' if self.holes != 1 else ''}",
            f"compactness {self.compactness:.2f}",
        ]
        if self.slice_gaps:
            parts.append(f"{self.slice_gaps} empty slice(s) inside")
        return ", ".join(parts)


def volume_unit(unit: str) -> tuple[str, float]:
    """(display unit, factor from unit³) for a spacing unit."""
    u = unit.strip().lower()
    if u == "mm":
        return "mL", 1e-3
    if u in ("um", "µm", "micron", "microns", "micrometer", "micrometre"):
        return "µm³", 1.0
    return f"{unit}³", 1.0


def _crop(mask: np.ndarray) -> np.ndarray:
    """The mask cropped to its bounding box with one voxel of background around it."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    inner = mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    return np.pad(inner, 1, constant_values=False)


def surface_area(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Area of the mask's boundary surface (marching cubes at 0.5), in unit²."""
    from skimage.measure import marching_cubes, mesh_surface_area

    crop = _crop(mask).astype(np.float32)
    verts, faces, _, _ = marching_cubes(crop, 0.5, spacing=tuple(float(s) for s in spacing))
    return float(mesh_surface_area(verts, faces))


def object_stats(mask: np.ndarray, spacing: tuple[float, float, float], unit: str) -> ObjectStats:
    """:class:`ObjectStats` of a (z, y, x) bool mask with voxel ``spacing`` in ``unit``."""
    mask = np.asarray(mask, dtype=bool)
    display, factor = volume_unit(unit)
    voxels = int(mask.sum())
    if voxels == 0:
        return ObjectStats(0, 0.0, display, 0, 0.0, 0, 0, 0.0, None, 0, 0)
    voxel_volume = float(np.prod(spacing))
    crop = _crop(mask)
    comps, n = ndimage.label(crop, structure=STRUCTURE_3D)
    sizes = np.bincount(comps.ravel())[1:]
    # cavities: background not connected to the crop's (padded, hence outside) border
    background, nb = ndimage.label(~crop)  # 6-connected background pairs with 26-connected fg
    outside = np.unique(
        np.concatenate(
            [
                background[0].ravel(),
                background[-1].ravel(),
                background[:, 0].ravel(),
                background[:, -1].ravel(),
                background[:, :, 0].ravel(),
                background[:, :, -1].ravel(),
            ]
        )
    )
    cavity_ids = np.setdiff1d(np.arange(1, nb + 1), outside)
    hole_voxels = int(np.isin(background, cavity_ids).sum()) if cavity_ids.size else 0
    volume = voxels * voxel_volume
    area = surface_area(mask, spacing)
    compactness = float(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area) if area > 0 else 0.0
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    return ObjectStats(
        voxels=voxels,
        volume=volume * factor,
        volume_unit=display,
        components=int(n),
        largest_fraction=float(sizes.max() / voxels),
        holes=int(cavity_ids.size),
        hole_voxels=hole_voxels,
        compactness=min(1.0, compactness),
        z_extent=(int(zs[0]), int(zs[-1])),
        slices=int(zs.size),
        slice_gaps=int(zs[-1] - zs[0] + 1 - zs.size),
    )


def fill_holes(mask: np.ndarray, per_slice: bool = True) -> np.ndarray:
    """The (z, y, x) mask with enclosed holes filled, in each slice or in 3D."""
    mask = np.asarray(mask, dtype=bool)
    if not per_slice:
        return ndimage.binary_fill_holes(mask)
    return np.stack([ndimage.binary_fill_holes(s) if s.any() else s for s in mask])


def _largest(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    comps, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(comps.ravel())[1:]
    return comps == int(np.argmax(sizes)) + 1


def keep_largest_component(mask: np.ndarray, per_slice: bool = False) -> np.ndarray:
    """The (z, y, x) mask reduced to its largest connected component (in 3D, or in each
    slice separately)."""
    mask = np.asarray(mask, dtype=bool)
    if not per_slice:
        return _largest(mask, STRUCTURE_3D)
    return np.stack([_largest(s, STRUCTURE_2D) for s in mask])
