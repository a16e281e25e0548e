"""The layers a session uses (Labels, Points for clicks, Shapes for boxes) and how prompts are
drawn on them. No Qt widgets and no segmentation here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from slicesam._napari.axes import AxisMap
from slicesam.engine.objects import SegObject

POSITIVE_COLOR = "lime"
NEGATIVE_COLOR = "red"
BOX_COLOR = "yellow"


@dataclass
class SessionLayers:
    labels: Any
    points: Any
    shapes: Any
    cyclic_colormap: Any


def add_session_layers(viewer, image_layer, labels: np.ndarray, metadata: dict) -> SessionLayers:
    """Add the Labels (result), Points (clicks) and Shapes (boxes) layers with the image's
    scale, translation and units, named after the image."""
    common: dict[str, Any] = {"scale": image_layer.scale, "translate": image_layer.translate}
    if getattr(image_layer, "units", None) is not None:
        common["units"] = image_layer.units
    name = image_layer.name
    labels_layer = viewer.add_labels(labels, name=f"{name} labels", metadata=metadata, **common)
    size = max(2.0, max(labels.shape[1:]) / 60)
    points = viewer.add_points(
        np.empty((0, 3)),
        ndim=3,
        name=f"{name} clicks",
        size=size,
        features={"positive": np.zeros(0, bool), "object": np.zeros(0, int)},
        face_color=POSITIVE_COLOR,
        border_color="white",
        **common,
    )
    shapes = viewer.add_shapes(
        ndim=3,
        name=f"{name} boxes",
        edge_width=max(1.0, size / 3),
        edge_color=BOX_COLOR,
        face_color="transparent",
        **common,
    )
    return SessionLayers(labels_layer, points, shapes, labels_layer.colormap)


@dataclass
class PromptGeometry:
    """Every object's prompts in data coordinates: clicks (N, 3) and boxes (4, 3) each."""

    points: np.ndarray
    positive: np.ndarray
    owner: np.ndarray
    boxes: list[np.ndarray]


def prompt_geometry(objects: Iterable[SegObject], axes: AxisMap) -> PromptGeometry:
    """Collect the clicks and boxes of ``objects`` (session coordinates) in data coordinates."""
    coords, positive, owner, boxes = [], [], [], []
    for obj in objects:
        for z, prompts in obj.prompts.items():
            for p in prompts.points:
                coords.append(axes.to_data((z, p.y, p.x)))
                positive.append(p.positive)
                owner.append(obj.label_id)
            if prompts.box is not None:
                b = prompts.box
                corners = [(z, b.y0, b.x0), (z, b.y0, b.x1), (z, b.y1, b.x1), (z, b.y1, b.x0)]
                boxes.append(np.array([axes.to_data(c) for c in corners]))
    return PromptGeometry(
        np.array(coords, float).reshape(-1, 3),
        np.array(positive, bool),
        np.array(owner, int),
        boxes,
    )


def draw_prompts(points_layer, shapes_layer, geometry: PromptGeometry) -> None:
    """Replace the layers' content with ``geometry`` (the caller blocks its own handlers)."""
    points_layer.selected_data = set()
    points_layer.data = geometry.points
    points_layer.features = {"positive": geometry.positive, "object": geometry.owner}
    if len(geometry.points):
        points_layer.face_color = [
            POSITIVE_COLOR if p else NEGATIVE_COLOR for p in geometry.positive
        ]
    mode = shapes_layer.mode
    shapes_layer.selected_data = set()
    shapes_layer.data = []
    if geometry.boxes:
        shapes_layer.add_rectangles(geometry.boxes, edge_color=BOX_COLOR, face_color="transparent")
    shapes_layer.mode = mode


def rectangle_to_box(
    vertices: np.ndarray, axes: AxisMap
) -> tuple[int, tuple[float, float, float, float]]:
    """A napari rectangle's (4, 3) data vertices -> (slice z, (x0, y0, x1, y1)) of the session."""
    corners = np.array([axes.to_session(v) for v in vertices])
    z = int(round(corners[:, 0].mean()))
    box = (corners[:, 2].min(), corners[:, 1].min(), corners[:, 2].max(), corners[:, 1].max())
    return z, tuple(float(v) for v in box)  # type: ignore[return-value]


def vertices_to_stroke(vertices: np.ndarray, axes: AxisMap) -> tuple[int, list[list[float]]]:
    """A napari path/polygon's (N, 3) data vertices -> (slice z, [[y, x], ...]) of the session."""
    pts = np.array([axes.to_session(v) for v in vertices])
    z = int(round(pts[:, 0].mean()))
    return z, [[float(y), float(x)] for y, x in pts[:, 1:]]


def visibility_colormap(cyclic, object_ids: Iterable[int], hidden: set[int]):
    """The labels colormap: napari's cyclic one, with hidden objects transparent."""
    if not hidden:
        return cyclic
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
    for obj in object_ids:
        rgba = np.asarray(cyclic.map(np.array([obj]))).reshape(-1)
        colors[obj] = np.zeros(4) if obj in hidden else rgba
    return DirectLabelColormap(color_dict=colors)
