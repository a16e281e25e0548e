"""The SliceSAM dock widget: layers in, prompts to the session, masks back into a Labels layer.

No segmentation logic lives here: the widget turns Points/Shapes layer edits into
:class:`~slicesam.engine.session.Session` calls, runs them off the GUI thread, and paints the
results back whenever the session reports a change (so a script's direct session calls show
too). Importing this module does not import torch (the model loads when a session starts).

Scripting: :meth:`SliceSamWidget.start` and :meth:`SliceSamWidget.propagate` return a
:class:`~slicesam._napari.jobs.Job` (``.wait()``); :meth:`SliceSamWidget.wait` waits for all
queued work (e.g. the box a script added to the Shapes layer); ``restore=`` of
:meth:`SliceSamWidget.start` ("ask", "restore", "fresh") answers the autosave question.

Keyboard shortcuts (viewer-wide; napari's own Ctrl+Z stays the Labels brush undo):

=========  =====================================================
Shift+T    toggle the next click positive / negative
Shift+N    new object
Shift+P    propagate the selected object (Esc-like: Shift+C cancels)
Shift+C    cancel a running propagation
Shift+Z    undo the last segmentation action
Shift+Y    redo
Shift+W    jump to the next low-confidence slice (Shift+Q: previous)
Shift+S    save the labels next to the source
=========  =====================================================
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from slicesam._napari.axes import AXIS_NAMES, AxisMap
from slicesam._napari.jobs import Job, SerialRunner, process_events_until
from slicesam._napari.layers import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    add_session_layers,
    draw_prompts,
    prompt_geometry,
    rectangle_to_box,
    vertices_to_stroke,
    visibility_colormap,
)
from slicesam._napari.reader import NAMES_KEY, PATH_KEY, VOLUME_KEY
from slicesam._napari.writer import object_colors
from slicesam.errors import SliceSamError
from slicesam.io import DicomGeometry, Volume, save_labels
from slicesam.io.dicom_seg import check_seg_possible
from slicesam.io.lazy import is_lazy
from slicesam.io.zarr_labels import memory_label_store
from slicesam.models.device import DEVICE_CHOICES
from slicesam.models.registry import DEFAULT_MODEL, MODELS
from slicesam.prompts import Lasso, Point, Scribble, make_box

if TYPE_CHECKING:  # pragma: no cover
    from slicesam.engine.session import Session

#: Answers to "restore the autosaved session?": ask the user, restore it, or start afresh.
RESTORE_POLICIES = ("ask", "restore", "fresh")


SHORTCUTS = {
    "Shift-T": ("toggle positive / negative click", "toggle_polarity"),
    "Shift-N": ("new object", "new_object"),
    "Shift-P": ("propagate the selected object", "propagate"),
    "Shift-C": ("cancel propagation", "cancel_propagation"),
    "Shift-Z": ("undo segmentation action", "undo"),
    "Shift-Y": ("redo", "redo"),
    "Shift-W": ("next low-confidence slice", "next_weak"),
    "Shift-Q": ("previous low-confidence slice", "previous_weak"),
    "Shift-S": ("save labels next to the source", "save_default"),
    "Shift-U": ("show where the model is unsure + a suggested click", "show_uncertainty"),
}


def button_row(buttons: list[tuple[str, Any]]) -> QHBoxLayout:
    """A row of push buttons, each connected to its slot."""
    row = QHBoxLayout()
    for text, slot in buttons:
        button = QPushButton(text)
        button.clicked.connect(lambda checked=False, slot=slot: slot())
        row.addWidget(button)
    return row


def unusable_reason(layer: Any) -> str | None:
    """Why ``layer`` cannot be segmented in 3D (None when it can: a 3D greyscale Image)."""
    from napari.layers import Image

    if not isinstance(layer, Image):
        return f"{layer.name!r} is a {type(layer).__name__} layer, not an image"
    if layer.rgb:
        return f"{layer.name!r} is an RGB image; SliceSAM segments greyscale volumes"
    if layer.ndim != 3:
        return f"{layer.name!r} has {layer.ndim} dimensions; SliceSAM needs a 3D (z, y, x) volume"
    return None


#: The model line's note when "auto" found no GPU (said there, not as a toast over the canvas).
NO_GPU = "no GPU found"


def quiet_device(model: str, device: str, notes: list[str]) -> str:
    """``device`` with "auto" resolved (CUDA > MPS > CPU) without the CPU-fallback warning,
    which napari would show as a notification over the canvas; :data:`NO_GPU` is put first
    in ``notes`` instead. Models that need no torch keep ``device`` as it is."""
    if device != "auto" or not MODELS[model].needs_torch:
        return device
    from slicesam.models.device import CpuFallbackWarning, resolve_device

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CpuFallbackWarning)
        chosen = resolve_device("auto")
    if chosen == "cpu":
        notes.insert(0, NO_GPU)
    return chosen


class _Changes(QObject):
    """Carries the session's change notices (from any thread) to the GUI thread."""

    changed = Signal()


def _shutdown_at_exit(widget_ref: weakref.ref) -> None:
    widget = widget_ref()
    if widget is not None:
        widget.shutdown()


def _said(verb: str):
    """The status line of an undo/redo job's (action name, changed) result."""
    return lambda result: f"{verb}: {result[0]}" if result[1] else f"nothing to be {verb}"


def shortcut_help() -> str:
    return "\n".join(f"{key:8s} {text}" for key, (text, _) in SHORTCUTS.items())


class SliceSamWidget(QWidget):
    """Interactive 3D segmentation of the chosen image layer.

    Args:
        napari_viewer: the viewer (napari passes it).
    """

    _watched_window: QObject | None = None  # set before Qt may call eventFilter
    _closed = False

    def __init__(self, napari_viewer: Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        #: The answer to "restore the autosaved session?" when :meth:`start` is not given one.
        self.restore_policy = "ask"
        self.session: Session | None = None
        self.axes = AxisMap(0)
        self.volume: Volume | None = None
        self.image_layer = None
        self.labels_layer = None
        self.points_layer = None
        self.shapes_layer = None
        self.prefetcher = None
        self._progress_label = "propagating"
        self._background_text = ""
        self.current_obj: int | None = None
        self.positive = True
        self.hidden: set[int] = set()
        self._rendering = False
        self._cancel = threading.Event()
        self._changes = _Changes()
        self._changes.changed.connect(self._on_session_changed)
        self._render_pending = False
        self._open_runner()
        self._build_ui()
        self._refresh_image_choices()
        self.viewer.layers.events.inserted.connect(self._refresh_image_choices)
        self.viewer.layers.events.removed.connect(self._refresh_image_choices)
        self._bind_keys()
        self.setToolTip("Keyboard shortcuts:\n" + shortcut_help())

    def _open_runner(self) -> None:
        """The job runner, and the hooks that end background work when napari closes (a
        model forward left running when the interpreter exits aborts the process)."""
        from qtpy.QtWidgets import QApplication

        self.runner = SerialRunner()
        self.runner.message.connect(self._set_status)
        self.runner.progress.connect(self._on_progress)
        self.runner.background.connect(self._on_background)
        me = weakref.ref(self)  # neither hook may keep the widget (and the viewer) alive
        self._atexit = lambda: _shutdown_at_exit(me)
        atexit.register(self._atexit)
        self._app = QApplication.instance()
        if self._app is not None:
            self._app.aboutToQuit.connect(self._atexit)
        self._closed = False

    # -- UI --------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        # the panels scroll (a short screen never squeezes them); the status lines stay put
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        panels = QWidget()
        layout = QVBoxLayout(panels)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(panels)
        outer.addWidget(scroll, 1)

        setup = QGroupBox("Volume and model")
        form = QFormLayout(setup)
        self.image_combo = QComboBox()
        form.addRow("image", self.image_combo)
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(AXIS_NAMES)
        form.addRow("slice along", self.axis_combo)
        self.model_combo = QComboBox()
        self.model_combo.addItems(list(MODELS))
        self.model_combo.setCurrentText(DEFAULT_MODEL)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        self.fetch_button = QPushButton("Download weights")
        self.fetch_button.setToolTip(
            "download the selected model's official weights into the cache folder "
            "($SLICESAM_CACHE_DIR), with their sha256 checked"
        )
        self.fetch_button.clicked.connect(self.fetch_weights)
        row.addWidget(self.fetch_button)
        form.addRow("model", row)
        self.weights_label = QLabel("")
        self.weights_label.setWordWrap(True)
        form.addRow(self.weights_label)
        self.model_combo.currentTextChanged.connect(lambda _: self._update_weights_state())
        row = QHBoxLayout()
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("weights file (SAM models)")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse_checkpoint)
        row.addWidget(self.checkpoint_edit)
        row.addWidget(browse)
        form.addRow("checkpoint", row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        form.addRow("device", self.device_combo)
        self.autosave_check = QCheckBox("autosave after every action (restore on reopen)")
        self.autosave_check.setToolTip(
            "the session is written to <image>.slicesam next to the image (or the user cache "
            "when that folder is read-only) after every action; starting again on the same "
            "image offers to restore it"
        )
        self.autosave_check.setChecked(True)
        form.addRow(self.autosave_check)
        self.disk_cache_check = QCheckBox("keep embeddings on disk (warm restarts)")
        self.disk_cache_check.setToolTip(
            "slice embeddings are kept in the user cache (float16, about 2 MB per slice), so the "
            "next session on this image, or one prepared with `slicesam embed`, computes none"
        )
        form.addRow(self.disk_cache_check)
        self.start_button = QPushButton("Start segmenting")
        self.start_button.clicked.connect(self.start)
        form.addRow(self.start_button)
        self.info_label = QLabel("no session")
        self.info_label.setWordWrap(True)
        form.addRow(self.info_label)
        layout.addWidget(setup)

        objects = QGroupBox("Objects")
        vbox = QVBoxLayout(objects)
        self.object_list = QListWidget()
        self.object_list.setMaximumHeight(110)
        self.object_list.currentItemChanged.connect(self._on_object_selected)
        self.object_list.itemChanged.connect(self._on_object_item_changed)
        self.object_list.itemDoubleClicked.connect(lambda item: self.rename_object())
        vbox.addWidget(self.object_list)
        vbox.addLayout(
            button_row(
                [
                    ("New", self.new_object),
                    ("Rename", self.rename_object),
                    ("Lock", self.toggle_lock),
                    ("Delete", self.delete_object),
                ]
            )
        )
        self.polarity_button = QPushButton()
        self.polarity_button.clicked.connect(self.toggle_polarity)
        vbox.addWidget(self.polarity_button)
        layout.addWidget(objects)

        run = QGroupBox("Propagate and review")
        vbox = QVBoxLayout(run)
        row = QHBoxLayout()
        self.propagate_button = QPushButton("Propagate")
        self.propagate_button.clicked.connect(self.propagate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_propagation)
        self.cancel_button.setEnabled(False)
        row.addWidget(self.propagate_button)
        row.addWidget(self.cancel_button)
        vbox.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setValue(0)
        vbox.addWidget(self.progress)
        self.repropagate_check = QCheckBox("corrections re-propagate")
        self.repropagate_check.setToolTip(
            "after a click or box on a propagated object, update the neighbouring slices "
            "outward from that slice for as long as the result changes"
        )
        self.repropagate_check.setChecked(True)
        vbox.addWidget(self.repropagate_check)
        vbox.addLayout(button_row([("Undo", self.undo), ("Redo", self.redo)]))
        row = QHBoxLayout()
        row.addWidget(QLabel("weak below"))
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.7)
        self.threshold_spin.valueChanged.connect(lambda _: self._update_confidence())
        row.addWidget(self.threshold_spin)
        row.addLayout(button_row([("◀ weak", self.previous_weak), ("weak ▶", self.next_weak)]))
        vbox.addLayout(row)
        unsure = QPushButton("Where is the model unsure? [Shift+U]")
        unsure.clicked.connect(self.show_uncertainty)
        vbox.addWidget(unsure)
        self.confidence_label = QLabel("")
        self.confidence_label.setWordWrap(True)
        vbox.addWidget(self.confidence_label)
        save = QPushButton("Save labels…")
        save.clicked.connect(self.save_dialog)
        vbox.addWidget(save)
        layout.addWidget(run)

        quality = QGroupBox("Quality of the selected object")
        vbox = QVBoxLayout(quality)
        self.quality_label = QLabel("")
        self.quality_label.setWordWrap(True)
        vbox.addWidget(self.quality_label)
        row = QHBoxLayout()
        self.postprocess_scope = QComboBox()
        self.postprocess_scope.addItems(["per slice", "in 3D"])
        row.addWidget(self.postprocess_scope)
        row.addLayout(
            button_row(
                [
                    ("Measure", self.measure),
                    ("Fill holes", lambda: self.postprocess(fill_holes=True)),
                    ("Keep largest", lambda: self.postprocess(keep_largest=True)),
                ]
            )
        )
        vbox.addLayout(row)
        layout.addWidget(quality)

        layout.addStretch(1)
        self.status_label = QLabel("pick an image and press Start")
        self.status_label.setWordWrap(True)
        self.status_label.setContentsMargins(8, 0, 8, 0)
        outer.addWidget(self.status_label)
        self.embed_label = QLabel("")
        self.embed_label.setWordWrap(True)
        self.embed_label.setToolTip(
            "slices around the one in view are embedded in the background, nearest first, "
            "so that boxes and clicks there are answered at once"
        )
        self.embed_label.setStyleSheet("color: gray")
        self.embed_label.setContentsMargins(8, 0, 8, 4)
        outer.addWidget(self.embed_label)
        lines = self.status_label.fontMetrics().lineSpacing()
        for label in (self.status_label, self.confidence_label, self.quality_label):
            label.setMinimumHeight(2 * lines + 2)  # their two lines are never squeezed
        # as wide as the panels need: the dock never hides a button behind its right edge
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(panels.minimumSizeHint().width() + bar)
        self._update_polarity_button()
        self._update_weights_state()

    def _bind_keys(self) -> None:
        for key, (_, method) in SHORTCUTS.items():
            action = getattr(self, method)
            self.viewer.bind_key(key, lambda viewer, action=action: action(), overwrite=True)

    def _refresh_image_choices(self, event: Any = None) -> None:
        """Offer the layers SliceSAM can segment: 3D greyscale images."""
        current = self.image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if unusable_reason(layer) is None]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        active = self.viewer.layers.selection.active
        if current in names:
            self.image_combo.setCurrentText(current)
        elif active is not None and active.name in names:
            self.image_combo.setCurrentText(active.name)
        self.image_combo.blockSignals(False)
        self.image_combo.setToolTip(
            "3D greyscale image layers"
            if names
            else "no 3D greyscale image open: File > Open "
            "a NIfTI or TIFF volume (with SliceSAM), or File > Open Sample > SliceSAM"
        )

    def _update_weights_state(self) -> None:
        """Say whether the selected model's weights are here; offer the download if not."""
        spec = MODELS[self.model_combo.currentText()]
        downloadable = spec.weights is not None
        present = spec.weights_present()
        self.fetch_button.setEnabled(downloadable and not present and not self.busy)
        if not spec.needs_torch:
            text = "no weights needed"
        elif present:
            text = f"weights: {Path(spec.weights_path()).name}"
        elif downloadable:
            text = "weights missing: Download, or pick a weights file below"
        else:
            text = "weights missing: pick a weights file below"
        self.weights_label.setText(text)
        self.weights_label.setToolTip(str(spec.weights_path()) if present else "")

    def fetch_weights(self) -> None:
        """Download the selected model's weights in the background, with progress."""
        from slicesam.models.download import fetch

        name = self.model_combo.currentText()
        self.fetch_button.setEnabled(False)
        self._set_status(f"downloading {name} weights…")
        bar, say = self.runner.progress.emit, self.runner.message.emit

        def progress(done: int, total: int | None) -> None:
            # megabytes keep the numbers inside Qt's int range
            mb, of = done // 1_000_000, (total or 0) // 1_000_000
            bar(mb, max(1, of or mb + 1))
            say(f"downloading {name}: {mb} MB" + (f" of {of} MB" if of else ""))

        def done(path) -> None:
            self._update_weights_state()
            self._set_status(f"downloaded {name} weights to {path}")

        def failed(exc: BaseException) -> None:
            self._update_weights_state()
            self._error(exc)

        self.runner.submit(lambda: fetch(name, progress=progress), done, failed)

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model weights", "", "PyTorch weights (*.pth *.pt);;All files (*)"
        )
        if path:
            self.checkpoint_edit.setText(path)

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self._set_status(f"{self._progress_label}: {done}/{total} slices")

    def _summary(self, summary) -> str:
        """A propagation's one-line status; where each walk stopped goes to its tooltip."""
        self.status_label.setToolTip("\n".join(summary.stops))
        return summary.brief()

    def _on_background(self, text: str | None = None) -> None:
        """The background embedding's state, on its own line (never over the action's);
        None refreshes the count of embedded slices only."""
        if text is not None:
            self._background_text = text
        session = self.session
        if session is None or not self._background_text:
            self.embed_label.setText("")
            return
        state = self._background_text
        if state.startswith("embedding slice") or state == "idle":
            state += f" ({len(session.cache)}/{session.shape[0]} slices embedded)"
        self.embed_label.setText(f"background: {state}")

    def _error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, SliceSamError) else f"{type(exc).__name__}: {exc}"
        self._set_status(f"error: {message}")
        from napari.utils.notifications import show_error

        show_error(message)
        self._render()

    # -- session ---------------------------------------------------------------------------
    def start(self, restore: str | None = None) -> Job | None:
        """Start a session on the chosen image layer (the model loads in the background).

        Args:
            restore: what to do with an autosaved session of this image: "ask" (a dialog),
                "restore" it, or start "fresh" (it is kept as the one backup beside it);
                None for :attr:`restore_policy`.

        Returns:
            the job's handle (``.wait()`` returns the session), or None when there is no
            usable image (a notification says what to do).
        """
        policy = self.restore_policy if restore is None else restore
        if policy not in RESTORE_POLICIES:
            raise ValueError(f"restore must be one of {RESTORE_POLICIES}, got {policy!r}")
        name = self.image_combo.currentText()
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        reason = "no image is open" if layer is None else unusable_reason(layer)
        if reason is not None:
            others = [lay.name for lay in self.viewer.layers if unusable_reason(lay) is None]
            advice = (
                f"pick one of {', '.join(map(repr, others))}"
                if others
                else "open a 3D volume (File > Open: NIfTI or TIFF stack, or File > Open "
                "Sample > SliceSAM)"
            )
            message = f"SliceSAM cannot start: {reason}; {advice}."
            self._set_status(message)
            show_warning(message)
            return None
        if self._closed:  # shut down (its dock was closed) and shown again
            self._open_runner()
        self._watch_window()
        self.close_session()
        self.image_layer = layer
        self.axes = AxisMap(self.axis_combo.currentIndex())
        volume = layer.metadata.get(VOLUME_KEY)
        if not isinstance(volume, Volume) or volume.data.shape != layer.data.shape:
            volume = Volume(data=np.asarray(layer.data), spacing=tuple(layer.scale))
        self.volume = volume
        window = tuple(float(v) for v in layer.contrast_limits)
        lazy = is_lazy(volume.data)  # read slice by slice: labels in a compressed store
        if lazy and self.axes.axis != 0:
            self._error(
                SliceSamError(
                    "this volume is read lazily (slice by slice from its file), so it is "
                    "segmented along its first axis only: pick slicing axis 0"
                )
            )
            return None
        labels = memory_label_store(volume.shape) if lazy else np.zeros(volume.shape, np.uint16)
        session_volume = Volume(
            data=volume.data if lazy else self.axes.view(volume.data),
            spacing=self.axes.spacing(volume.spacing),
            modality=volume.modality,
            unit=volume.unit,
        )
        session_labels = labels if lazy else self.axes.view(labels)
        model, device = self.model_combo.currentText(), self.device_combo.currentText()
        checkpoint = self.checkpoint_edit.text().strip() or None
        source = layer.metadata.get(PATH_KEY) or (str(volume.path) if volume.path else None)
        autosave = self.autosave_check.isChecked() and not lazy
        disk_cache = self.disk_cache_check.isChecked()
        if lazy and self.autosave_check.isChecked():
            show_info("autosave is off for a volume read lazily; save the labels as you go")
        earlier = None
        if autosave:
            from slicesam.engine.autosave import find_autosave

            earlier = find_autosave(source if source else session_volume)
        if earlier is None or policy == "fresh":
            restore_it = False
        elif policy == "restore":
            restore_it = True
        else:
            restore_it = self.ask_restore(earlier)
        self.start_button.setEnabled(False)
        self._set_status(f"loading {model}…")
        notes: list[str] = []

        def job():
            from slicesam.engine.autosave import start_autosave
            from slicesam.engine.session import Session

            chosen = quiet_device(model, device, notes)
            if restore_it:
                try:
                    return Session.restore(
                        earlier,
                        model=model,
                        volume=session_volume,
                        labels=session_labels,
                        checkpoint=checkpoint,
                        device=chosen,
                        disk_cache=True if disk_cache else None,
                    )
                except SliceSamError as exc:  # e.g. another slicing axis: start afresh
                    notes.append(f"could not restore {earlier}: {exc}")
                    labels[...] = 0
            session = Session(
                session_volume,
                model=model,
                checkpoint=checkpoint,
                device=chosen,
                window=window,
                labels=session_labels,
                disk_cache=True if disk_cache else None,
            )
            if autosave:  # an earlier sidecar becomes the one backup, never overwritten
                journal = start_autosave(session, True, image_path=source, axis=self.axes.axis)
                if journal is not None and journal.backup is not None:
                    notes.append(f"the previous autosaved session was kept at {journal.backup}")
            return session

        def done(session: Session) -> None:
            self.start_button.setEnabled(True)
            self._attach(session, labels, device_note=notes[0] if notes[:1] == [NO_GPU] else "")
            for note in notes:
                if note != NO_GPU:
                    show_info(note)

        def failed(exc: BaseException) -> None:
            self.start_button.setEnabled(True)
            self._error(exc)

        return self.runner.submit(job, done, failed, label=f"loading {model}")

    def ask_restore(self, sidecar: Path) -> bool:
        """Ask whether to restore the autosaved session in ``sidecar`` (``start(restore=...)``
        or :attr:`restore_policy` answer it without a dialog)."""
        import time

        from qtpy.QtWidgets import QMessageBox

        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(sidecar.stat().st_mtime))
        answer = QMessageBox.question(
            self,
            "Restore the autosaved session?",
            f"An autosaved session of this image from {when} exists:\n{sidecar}\n\n"
            "Restore it? (No starts a new session; the old one is kept as the one backup "
            "beside it, replacing any older backup.)",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _attach(self, session: Session, labels: np.ndarray, device_note: str = "") -> None:
        from slicesam.engine.prefetch import Prefetcher

        self.session = session
        layer = self.image_layer
        metadata = {VOLUME_KEY: self.volume}
        if PATH_KEY in layer.metadata:
            metadata[PATH_KEY] = layer.metadata[PATH_KEY]
        layers = add_session_layers(self.viewer, layer, labels, metadata)
        self.labels_layer, self.points_layer = layers.labels, layers.points
        self.shapes_layer, self._cyclic_colormap = layers.shapes, layers.cyclic_colormap
        self.points_layer.events.data.connect(self._on_points_data)
        self.shapes_layer.events.data.connect(self._on_shapes_data)
        self.labels_layer.events.paint.connect(self._on_paint)
        session.add_listener(lambda slices: self._changes.changed.emit())
        self.viewer.dims.order = self.axes.perm
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.prefetcher = Prefetcher(
            session.embed,
            session.cache.__contains__,
            session.shape[0],
            radius=8,
            on_status=self.runner.background.emit,
            thread_setup=session.background_setup,  # pauses while a click is served
        )
        self._on_step()
        self.viewer.layers.selection.active = self.shapes_layer
        self.shapes_layer.mode = "add_rectangle"
        model = session.model
        device = f"{model.device} ({device_note})" if device_note else str(model.device)
        self.info_label.setText(
            f"{model.name} · {device} · window {session.window[0]:g}…{session.window[1]:g}"
        )
        self.new_object()
        self._render()
        self._set_status("draw a box (or click) on the object")

    def close_session(self) -> None:
        """Stop background work of the current session and flush its autosave (its layers
        stay)."""
        if self.prefetcher is not None:
            self.prefetcher.stop(timeout=10)
            self.prefetcher = None
        if self.session is not None:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):  # gone with the viewer
                self.viewer.dims.events.current_step.disconnect(self._on_step)
            if self.session.autosave is not None:
                self.session.autosave.close(timeout=10)  # everything on disk
        self.session = None

    def shutdown(self) -> None:
        """End all background work for good (napari is closing): cancel a running
        propagation, stop the prefetcher mid-slice, wait for the running job, flush the
        autosave. Safe to call more than once, and after Qt deleted the widget."""
        if self._closed:
            return
        self._closed = True
        self._cancel.set()
        prefetcher, self.prefetcher = self.prefetcher, None
        if prefetcher is not None:
            prefetcher.stop(timeout=10)
        self.runner.shutdown(wait=True)  # a cancelled propagation ends at its next slice
        session, self.session = self.session, None
        if session is not None and session.autosave is not None:
            session.autosave.close(timeout=10)
        atexit.unregister(self._atexit)
        with contextlib.suppress(TypeError, RuntimeError):  # the app may be gone already
            self._app.aboutToQuit.disconnect(self._atexit)
        window, self._watched_window = self._watched_window, None
        with contextlib.suppress(RuntimeError):  # deleted by Qt already
            if window is not None:
                window.removeEventFilter(self)

    def _watch_window(self) -> None:
        """Shut down when the viewer's window closes (napari closes no dock widget then)."""
        window = self.window()
        if window is self or window is self._watched_window:
            return
        window.installEventFilter(self)
        self._watched_window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if watched is self._watched_window and event.type() == QEvent.Type.Close:
            if event.spontaneous():  # the user's click: napari may still ask to confirm
                QTimer.singleShot(0, self._shutdown_if_closed)
            else:  # viewer.close() from code: no question asked, the window goes
                self.shutdown()
        return False

    def _shutdown_if_closed(self) -> None:
        window = self._watched_window
        if window is not None and not window.isVisible():
            self.shutdown()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self._watch_window()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.shutdown()
        super().closeEvent(event)

    @property
    def busy(self) -> bool:
        """True while a job (model load, segmentation, propagation) is running or queued."""
        return self.runner.busy

    def wait(self, timeout: float | None = 600.0) -> None:
        """Wait until every queued job ran and the viewer shows its result (for scripts:
        e.g. after adding a box to the Shapes layer). Raises ``TimeoutError``."""
        idle = self.runner.wait_idle(timeout)
        if not idle or not process_events_until(lambda: not self._render_pending, timeout):
            raise TimeoutError(f"SliceSAM still busy after {timeout} s")

    def current_slice(self) -> int:
        return int(self.viewer.dims.current_step[self.axes.axis])

    def _on_step(self, event: Any = None) -> None:
        if self.prefetcher is not None and self.session is not None:
            self.prefetcher.request(self.current_slice())

    def _on_session_changed(self) -> None:
        """The session changed (any thread, any caller): repaint once per burst."""
        if self._render_pending:
            return
        self._render_pending = True

        def render() -> None:
            self._render_pending = False
            self._render()

        QTimer.singleShot(0, render)

    def _require_session(self) -> Session | None:
        if self.session is None:
            self._set_status("press Start first")
        return self.session

    def _run(
        self,
        job,
        label: str,
        slices: list[int] | None = None,
        after=None,
        report=None,
    ) -> Job | None:
        """Run a session action in the worker, then repaint.

        Brush edits are adopted first (napari's own Labels undo emits no event): on the given
        ``slices`` only for prompts (the click path stays cheap), on the whole volume otherwise.
        ``report(result)`` gives the status line when the job ended (default "<label>: done");
        ``after(result)`` runs on the GUI thread once the job ended (result None on error).
        """
        session = self._require_session()
        if session is None:
            return None
        self._set_status(label + "…")

        def wrapped():
            session.sync_external_edits(slices=slices)
            return job(session)

        def done(result) -> None:
            self._render()
            self._set_status(report(result) if report is not None else f"{label}: done")
            if after is not None:
                after(result)

        def failed(exc: BaseException) -> None:
            self._error(exc)
            if after is not None:
                after(None)

        return self.runner.submit(wrapped, done, failed, label=label)

    # -- objects ---------------------------------------------------------------------------
    def new_object(self, name: str | None = None) -> None:
        """Create an object (in the worker, after any running job) and select it."""
        self._run(lambda s: self._select_later(s.new_object(name)), "new object")

    def _select_later(self, obj: int) -> None:
        self.current_obj = obj  # read by the GUI thread's next render

    def rename_object(self) -> None:
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj = self.current_obj
        old = session.objects[obj].name
        text, ok = QInputDialog.getText(self, "Rename object", "name", text=old)
        if ok and text.strip():
            self._run(lambda s: s.rename_object(obj, text.strip()), f"rename object {obj}")

    def toggle_lock(self) -> None:
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj = self.current_obj
        locked = not session.objects[obj].locked
        self._run(lambda s: s.lock_object(obj, locked), f"{'lock' if locked else 'unlock'} {obj}")

    def delete_object(self) -> None:
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj = self.current_obj
        self._run(lambda s: s.delete_object(obj), f"delete object {obj}")
        self.current_obj = None

    def select_object(self, obj: int) -> None:
        self.current_obj = obj
        if self.labels_layer is not None:
            self.labels_layer.selected_label = obj
        self._render_objects()
        self._update_confidence()

    def _on_object_selected(self, item: QListWidgetItem | None, previous: Any = None) -> None:
        if item is not None and not self._rendering:
            self.select_object(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_object_item_changed(self, item: QListWidgetItem) -> None:
        if self._rendering:
            return
        obj = int(item.data(Qt.ItemDataRole.UserRole))
        visible = item.checkState() == Qt.CheckState.Checked
        if visible:
            self.hidden.discard(obj)
        else:
            self.hidden.add(obj)
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        if self.labels_layer is not None and self.session is not None:
            self.labels_layer.colormap = visibility_colormap(
                self._cyclic_colormap, self.session.objects, self.hidden
            )

    # -- prompts ---------------------------------------------------------------------------
    def toggle_polarity(self) -> None:
        self.positive = not self.positive
        self._update_polarity_button()

    def _update_polarity_button(self) -> None:
        sign = "positive (adds)" if self.positive else "negative (removes)"
        self.polarity_button.setText(f"next click: {sign}  [Shift+T]")
        if self.points_layer is not None:
            color = POSITIVE_COLOR if self.positive else NEGATIVE_COLOR
            self.points_layer.selected_data = set()  # else the colour applies to the selection
            self.points_layer.current_face_color = color
            self.points_layer.feature_defaults["positive"] = self.positive

    def _prompt(self, prompt: Any, label: str) -> Job | None:
        """Apply ``prompt`` (a Box, Point, Scribble or Lasso) to the selected object, creating
        one first if none is selected, as ONE undo step: with "corrections re-propagate" on,
        the session re-walks from the prompt's slice when the object was already propagated
        (:meth:`Session.correct <slicesam.engine.session.Session.correct>`)."""
        repropagate = self.repropagate_check.isChecked()

        def job(session: Session):
            self._cancel.clear()
            self._progress_label = f"{label}: re-walk"
            obj = self.current_obj
            if obj is None or obj not in session.object_ids:
                obj = session.new_object()
                self._select_later(obj)
            return session.correct(
                obj,
                prompt,
                repropagate=repropagate,
                progress=self.runner.progress.emit,
                cancel=self._cancel.is_set,
            )

        def report(correction) -> str:
            if correction.summary is not None:
                return f"{label} + re-walk: {correction.summary.brief()}"
            obj = self.session.objects.get(self.current_obj) if self.session else None
            if obj is not None and not obj.has_derived_slices():
                return f"{label}: done; Propagate [Shift+P] fills the volume from it"
            return f"{label}: done"

        return self._run(job, label, slices=[prompt.z], report=report)

    def _added_items(self, event: Any) -> list[int]:
        """Indices of items the user just added to a prompts layer (none while we redraw)."""
        if self._rendering or self.session is None or getattr(event, "action", None) != "added":
            return []
        return sorted(event.data_indices)

    def _on_points_data(self, event: Any) -> None:
        for index in self._added_items(event):
            z, y, x = self.axes.to_session(self.points_layer.data[index])
            point = Point(int(round(z)), float(y), float(x), self.positive)
            self._prompt(point, f"{'+' if point.positive else '-'} click on slice {point.z}")

    def _on_shapes_data(self, event: Any) -> None:
        for index in self._added_items(event):
            kind = self.shapes_layer.shape_type[index]
            if kind in ("path", "polygon"):
                self._stroke_prompt(kind, self.shapes_layer.data[index])
                continue
            if kind != "rectangle":
                self._set_status(f"a {kind} is not a prompt: draw a box, a path or a polygon")
                continue
            z, box = rectangle_to_box(self.shapes_layer.data[index], self.axes)
            self._prompt(make_box(z, box), f"box on slice {z}")

    def _stroke_prompt(self, kind: str, vertices: np.ndarray) -> None:
        """A path (scribble) or polygon (lasso) from the Shapes layer, with the click polarity."""
        z, points = vertices_to_stroke(vertices, self.axes)
        stroke = Scribble if kind == "path" else Lasso
        prompt = stroke(z, tuple((y, x) for y, x in points), self.positive)
        sign = "+" if self.positive else "-"
        self._prompt(prompt, f"{sign} {stroke.__name__.lower()} on slice {z}")

    def _on_paint(self, event: Any = None) -> None:
        if self.session is not None:
            self._run(lambda s: None, "brush edit")  # _run adopts the edit

    # -- propagation, undo, review ---------------------------------------------------------
    def propagate(self) -> Job | None:
        """Propagate the selected object through the volume, with progress and Cancel.

        Returns:
            the job's handle (``.wait()`` returns the
            :class:`~slicesam.engine.session.PropagationSummary`), or None without a session
            or object.
        """
        session = self._require_session()
        if session is None or self.current_obj is None:
            return None
        obj = self.current_obj
        self.cancel_button.setEnabled(True)
        self.propagate_button.setEnabled(False)
        self.progress.setValue(0)

        def job(s: Session):
            self._cancel.clear()
            self._progress_label = f"propagating object {obj}"
            return s.propagate(obj, progress=self.runner.progress.emit, cancel=self._cancel.is_set)

        def finish(summary) -> None:
            self.cancel_button.setEnabled(False)
            self.propagate_button.setEnabled(True)

        return self._run(job, f"propagating object {obj}", after=finish, report=self._summary)

    def show_uncertainty(self) -> None:
        """Show the selected object's uncertainty on the slice in view as an image layer (on
        that slice only) and the suggested next click as a marker."""
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj, z = self.current_obj, self.current_slice()

        def show(result) -> None:
            if result is None:
                return
            umap, suggestion = result
            self._draw_uncertainty(z, umap, suggestion)
            if suggestion is None:
                self._set_status(f"slice {z}: no uncertain place near the boundary")
            else:
                question = "add" if suggestion.positive else "remove"
                self._set_status(
                    f"slice {z}: most unsure at (y {suggestion.y}, x {suggestion.x}) — "
                    f"{question} it? (uncertainty {suggestion.uncertainty:.2f})"
                )

        self._run(lambda s: s.uncertainty(obj, z), f"uncertainty of slice {z}", after=show)

    def _draw_uncertainty(self, z: int, umap: np.ndarray, suggestion) -> None:
        """(Re)draw the 'uncertainty' image layer on slice ``z`` and the suggestion marker."""
        layer = self.image_layer
        scale = np.asarray(layer.scale, dtype=float)
        translate = np.asarray(layer.translate, dtype=float).copy()
        translate[self.axes.axis] += z * scale[self.axes.axis]
        data = self.axes.unview(umap[None].astype(np.float32))
        name = f"{layer.name} uncertainty"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.uncertainty_layer = self.viewer.add_image(
            data,
            name=name,
            scale=scale,
            translate=translate,
            colormap="magma",
            opacity=0.5,
            blending="additive",
            contrast_limits=(0.0, 1.0),
        )
        marker = f"{layer.name} suggested click"
        if marker in self.viewer.layers:
            self.viewer.layers.remove(marker)
        if suggestion is not None:
            at = self.axes.to_data((z, suggestion.y, suggestion.x))
            self.viewer.add_points(
                [at],
                name=marker,
                scale=scale,
                translate=layer.translate,
                symbol="cross",
                size=12,
                face_color="yellow",
            )
        # prompts stay the active layer so the next click goes where the user means
        self.viewer.layers.selection.active = self.points_layer

    def measure(self) -> None:
        """Show the selected object's volume, components, holes and compactness."""
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj = self.current_obj

        def show(stats) -> None:
            if stats is not None:
                self.quality_label.setText(f"object {obj}: {stats}")

        self._run(lambda s: s.stats(obj), f"measuring object {obj}", after=show)

    def postprocess(self, *, fill_holes: bool = False, keep_largest: bool = False) -> None:
        """Fill holes / keep the largest component of the selected object (one undo step)."""
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        obj = self.current_obj
        per_slice = self.postprocess_scope.currentText() == "per slice"
        self._run(
            lambda s: s.postprocess(
                obj, fill_holes=fill_holes, keep_largest=keep_largest, per_slice=per_slice
            ),
            f"post-processing object {obj}",
            after=lambda changed: self.measure() if changed is not None else None,
        )

    def cancel_propagation(self) -> None:
        self._cancel.set()

    def undo(self) -> Job | None:
        """Undo the last segmentation action (a prompt with its re-walk is one action)."""
        return self._run(lambda s: (s.undo_name, s.undo()), "undo", report=_said("undone"))

    def redo(self) -> Job | None:
        """Redo the last undone segmentation action."""
        return self._run(lambda s: (s.redo_name, s.redo()), "redo", report=_said("redone"))

    def _jump_weak(self, direction: int) -> None:
        session = self._require_session()
        if session is None or self.current_obj is None:
            return
        z = session.next_low_confidence(
            self.current_obj, self.current_slice(), direction, self.threshold_spin.value()
        )
        if z is None:
            self._set_status("no further low-confidence slice")
            return
        self.viewer.dims.set_current_step(self.axes.axis, z)

    def next_weak(self) -> None:
        self._jump_weak(+1)

    def previous_weak(self) -> None:
        self._jump_weak(-1)

    # -- saving ----------------------------------------------------------------------------
    def default_save_path(self) -> Path:
        """``<source folder>/<source stem>_labels.<source format>`` (a DICOM series folder:
        ``<folder>_labels.dcm`` beside it, ``.nii.gz`` when the series cannot get a SEG; the
        home folder if unknown)."""
        source = self.volume.path if self.volume is not None else None
        if source is None:
            return Path.home() / "slicesam_labels.nii.gz"
        name = source.name
        if isinstance(self.volume.geometry, DicomGeometry):  # a series folder: beside it
            seg = source.with_name(name + "_labels.dcm")
            try:
                check_seg_possible(self.volume.geometry, seg)
            except SliceSamError:  # UIDs blanked by an anonymiser: NIfTI on the series grid
                return source.with_name(name + "_labels.nii.gz")
            return seg
        for suffix in (".nii.gz", ".nii", ".tiff", ".tif"):
            if name.lower().endswith(suffix):
                return source.with_name(name[: -len(suffix)] + "_labels" + suffix)
        return source.with_name(source.stem + "_labels.nii.gz")

    def save(self, path: str | Path) -> Path | None:
        """Write the labels with the source geometry; returns the path written."""
        if self.labels_layer is None or self.volume is None:
            self._set_status("nothing to save yet")
            return None
        data = self.labels_layer.data
        labels = data if is_lazy(data) else np.asarray(data)  # a store is written slice by slice
        names = {obj.label_id: obj.name for obj in self.session.objects.values() if obj.name}
        ids = np.array(sorted(names), dtype=np.int64)
        colors = object_colors({"colormap": self._cyclic_colormap}, ids)  # hidden ones too
        try:
            written = save_labels(path, labels, like=self.volume, names=names, colors=colors)
        except SliceSamError as exc:
            self._error(exc)
            return None
        self._set_status(f"saved {written}")
        return written

    def save_default(self) -> None:
        self.save(self.default_save_path())

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save labels",
            str(self.default_save_path()),
            "NIfTI or TIFF (*.nii.gz *.nii *.tif *.tiff);;DICOM-SEG (*.dcm)"
            if isinstance(self.volume.geometry, DicomGeometry)
            else "NIfTI or TIFF (*.nii.gz *.nii *.tif *.tiff)",
        )
        if path:
            self.save(path)

    # -- painting results back -------------------------------------------------------------
    def _render(self) -> None:
        """Bring layers and panels in line with the session (the source of truth)."""
        session = self.session
        if session is None or self.labels_layer is None:
            return
        if is_lazy(session.labels):  # a label store: the layer shows the store itself
            if session.labels is not self.labels_layer.data:
                self.labels_layer.data = session.labels
        else:
            data = self.axes.unview(session.labels)
            if (
                data.base is not self.labels_layer.data.base
                or data.dtype != self.labels_layer.data.dtype
            ):
                self.labels_layer.data = data  # the session switched to uint32 labels
        self.labels_layer.refresh()
        self._render_prompts()
        self._render_objects()
        self._on_background()
        self._apply_visibility()
        self._update_confidence()

    def _render_prompts(self) -> None:
        geometry = prompt_geometry(self.session.objects.values(), self.axes)
        self._rendering = True
        try:
            draw_prompts(self.points_layer, self.shapes_layer, geometry)
            self._update_polarity_button()
        finally:
            self._rendering = False

    def _render_objects(self) -> None:
        session = self.session
        self._rendering = True
        try:
            self.object_list.clear()
            for obj in session.objects.values():
                lock = "  [locked]" if obj.locked else ""
                item = QListWidgetItem(f"{obj.label_id} · {obj.name}{lock}")
                item.setData(Qt.ItemDataRole.UserRole, obj.label_id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                hidden = obj.label_id in self.hidden
                item.setCheckState(Qt.CheckState.Unchecked if hidden else Qt.CheckState.Checked)
                item.setToolTip("checkbox: show/hide · double-click: rename")
                self.object_list.addItem(item)
                if obj.label_id == self.current_obj:
                    self.object_list.setCurrentItem(item)
        finally:
            self._rendering = False
        if self.labels_layer is not None:  # what napari's own File > Save writes as names
            self.labels_layer.metadata[NAMES_KEY] = {
                obj.label_id: obj.name for obj in session.objects.values()
            }
        if self.current_obj is not None and self.labels_layer is not None:
            self.labels_layer.selected_label = self.current_obj

    def _update_confidence(self) -> None:
        session = self.session
        if session is None or self.current_obj not in session.objects:
            self.confidence_label.setText("")
            return
        conf = session.confidence(self.current_obj)
        if not conf:
            self.confidence_label.setText("no slices segmented yet")
            return
        weak = session.low_confidence_slices(self.current_obj, self.threshold_spin.value())
        worst = sorted(conf.items(), key=lambda kv: kv[1])[:5]
        mean = float(np.mean(list(conf.values())))
        text = (
            f"{len(conf)} slice{'' if len(conf) == 1 else 's'} · mean confidence {mean:.2f} · "
            f"{len(weak)} weak\nweakest: " + ", ".join(f"{z}: {c:.2f}" for z, c in worst[:4])
        )
        self.confidence_label.setText(text)
