"""Kill -9 a process in the middle of its session and restore from the sidecar.

A child Python process runs a scripted session with autosave (the fake model of conftest.py,
slowed down so that a propagation takes seconds) and prints a line before and after each
action. The parent kills it with SIGKILL, restores the session from the sidecar and compares it
with the same script run here without autosave: the restored session must equal the state after
some prefix of the actions, and that prefix must hold every action that had finished before the
last one (at most the last action is lost; no slice is half written).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import slicesam
from slicesam.engine import Session
from slicesam.engine.journal import read_journal
from slicesam.io import load_volume

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

TESTS = Path(__file__).resolve().parents[1]
SRC = Path(slicesam.__file__).resolve().parents[1]

CHILD = '''
"""Run a scripted session with autosave; print "start i op" / "done i" around each action."""
import json
import sys
import time

import numpy as np

from fakes import FakeModel


class SlowModel(FakeModel):
    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def predict(self, *args, **kwargs):
        time.sleep(self.delay)
        return super().predict(*args, **kwargs)


def apply(sess, op, kw):
    if op == "paint":  # a brush stroke in napari: the array changes, then the session adopts it
        z, y0, y1, x0, x1, value = kw
        sess.labels[z, y0:y1, x0:x1] = value
        return sess.sync_external_edits()
    return getattr(sess, op)(**kw)


def main():
    from slicesam.engine import Session
    from slicesam.engine.autosave import start_autosave
    from slicesam.io import load_volume

    cfg = json.loads(sys.argv[1])
    sess = Session(load_volume(cfg["image"]), model=SlowModel(cfg["delay"]))
    start_autosave(sess, True, snapshot_every=cfg["snapshot_every"])
    print("ready", flush=True)
    for i, (op, kw) in enumerate(cfg["actions"]):
        print(f"start {i} {op}", flush=True)
        apply(sess, op, kw)
        print(f"done {i}", flush=True)
    print("finished", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
'''


def load_child(folder: Path):
    path = folder / "crash_child.py"
    path.write_text(CHILD)
    spec = importlib.util.spec_from_file_location("crash_child", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


class Child:
    """The child process and the lines it printed (read on a thread)."""

    def __init__(self, script: Path, cfg: dict) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, line: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if self.proc.poll() is not None and line not in self.lines:
                raise AssertionError(f"child ended ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"child never printed {line!r}: {self.lines}")
            time.sleep(0.005)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    @property
    def done(self) -> int:
        """How many actions the child reported finished."""
        return sum(line.startswith("done ") for line in self.lines)


def reference_states(module, volume, actions, model) -> list[tuple[np.ndarray, dict]]:
    """(labels, objects) after 0, 1, ... actions, run here without autosave."""
    sess = Session(volume, model=model)
    states = [(sess.labels.copy(), sess.objects)]
    for op, kw in actions:
        module.apply(sess, op, kw)
        states.append((sess.labels.copy(), sess.objects))
    return states


def matching_prefixes(restored: Session, states) -> list[int]:
    """Every k such that the restored session equals the state after k actions."""
    return [
        k
        for k, (labels, objects) in enumerate(states)
        if np.array_equal(restored.labels, labels) and restored.objects == objects
    ]


@pytest.fixture
def image(tmp_path: Path, two_balls) -> Path:
    vol, _, _ = two_balls
    path = tmp_path / "balls.tif"
    tifffile.imwrite(path, vol)
    return path


def restore(image: Path, model) -> Session:
    return Session.restore(image, model=model, resume=False)


BEFORE_PROPAGATION = [
    ["new_object", {"name": "A"}],
    ["add_box", {"obj": 1, "z": 10, "box": [10, 12, 26, 28]}],
    ["new_object", {"name": "B"}],
    ["add_point", {"obj": 2, "z": 8, "y": 24, "x": 46}],
    ["paint", [3, 2, 6, 2, 9, 7]],
    ["rename_object", {"obj": 1, "name": "liver"}],
    ["lock_object", {"obj": 2}],
]


def test_kill_during_propagation_keeps_every_earlier_action(tmp_path, image, fake_model):
    script, module = load_child(tmp_path)
    actions = [*BEFORE_PROPAGATION, ["propagate", {"obj": 1}]]
    cfg = {"image": str(image), "delay": 0.3, "snapshot_every": 50, "actions": actions}
    child = Child(script, cfg)
    child.wait_for(f"start {len(actions) - 1} propagate")
    time.sleep(1.0)  # a few slices into the propagation (0.3 s per slice)
    assert child.proc.poll() is None, "the propagation finished before the kill"
    child.kill()
    assert child.done == len(BEFORE_PROPAGATION)

    states = reference_states(module, load_volume(image), actions, type(fake_model)())
    restored = restore(image, type(fake_model)())
    assert len(BEFORE_PROPAGATION) in matching_prefixes(restored, states)
    labels, objects = states[len(BEFORE_PROPAGATION)]
    assert np.array_equal(restored.labels, labels)
    assert restored.objects == objects
    assert restored.objects[1].name == "liver" and restored.objects[2].locked
    assert (restored.labels[3, 2:6, 2:9] == 7).all() and 7 in restored.objects
    ops = [r["op"] for r in read_journal(image.with_name("balls.tif.slicesam")).actions]
    assert ops == [op if op != "paint" else "sync_external_edits" for op, _ in BEFORE_PROPAGATION]


def stream() -> list:
    """Many quick actions of every kind (no model delay)."""
    actions: list = [["new_object", {"name": "A"}], ["new_object", {"name": "B"}]]
    for z in range(6, 15):
        actions.append(["add_box", {"obj": 1, "z": z, "box": [9, 11, 27, 29]}])
        if z % 3 == 0:
            actions.append(["add_point", {"obj": 2, "z": z - 1, "y": 24, "x": 46}])
        if z % 4 == 0:
            actions.append(["paint", [z - 5, 0, 3, 0, 3 + z, 5]])
        if z % 5 == 0:
            actions.append(["undo", {}])
            actions.append(["redo", {}])
    actions.append(["propagate", {"obj": 2, "z_range": [4, 12]}])
    actions.append(["delete_object", {"obj": 5}])
    actions.append(["rename_object", {"obj": 1, "name": "x"}])
    return actions


@pytest.mark.parametrize("delay_s", [0.05, 0.15, 0.3, 0.6])
def test_kill_at_any_moment_loses_at_most_the_last_action(tmp_path, image, delay_s, fake_model):
    script, module = load_child(tmp_path)
    actions = stream()
    cfg = {"image": str(image), "delay": 0.002, "snapshot_every": 4, "actions": actions}
    child = Child(script, cfg)
    child.wait_for("ready")
    time.sleep(delay_s)
    child.kill()
    reported = child.done
    states = reference_states(module, load_volume(image), actions, type(fake_model)())
    restored = restore(image, type(fake_model)())
    started = sum(line.startswith("start ") for line in child.lines)
    ks = matching_prefixes(restored, states)
    assert ks, "the restored session is no prefix of the actions"
    # when action i had returned, actions 0..i-1 were on disk; nothing beyond what started
    assert any(reported - 1 <= k <= max(started, reported) for k in ks), (ks, reported, started)
    state = read_journal(image.with_name("balls.tif.slicesam"))
    assert reported - 1 <= len(state.actions) <= max(started, reported)
