"""Interactive work first: the foreground gate, yield points, and a prefetcher that pauses."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fakes import FakeModel
from slicesam.engine import Session
from slicesam.engine.foreground import ForegroundGate
from slicesam.engine.prefetch import Prefetcher
from slicesam.models.base import Embedding
from slicesam.models.yield_points import add_block_yield_points, set_yield_hook, yield_point


def _in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_background_waits_while_another_thread_is_busy():
    gate = ForegroundGate()
    done = threading.Event()
    with gate.busy():
        with gate.busy():  # re-entrant
            assert gate.active
        thread = _in_thread(lambda: gate.wait_idle() and done.set())
        assert not done.wait(0.2), "the background thread did not wait"
        assert gate.active
    assert done.wait(2), "the background thread was not released"
    thread.join(2)
    assert not gate.active and gate.pauses == 1


def test_a_thread_never_waits_for_itself_and_timeouts_return_false():
    gate = ForegroundGate()
    with gate.busy():
        assert gate.wait_idle(timeout=0.05)  # its own work does not block it
        result = []
        _in_thread(lambda: result.append(gate.wait_idle(timeout=0.05))).join(2)
        assert result == [False]


def test_released_lets_the_background_finish_what_the_foreground_waits_for():
    gate = ForegroundGate()
    finished = threading.Event()

    def background():
        gate.wait_idle()
        finished.set()

    with gate.busy():
        _in_thread(background)
        assert not finished.wait(0.1)
        with gate.released():
            assert finished.wait(2)
        assert gate.active  # busy again after the wait


def test_yield_hooks_are_per_thread():
    calls = []
    set_yield_hook(lambda: calls.append("main"))
    try:
        _in_thread(yield_point).join(2)  # another thread: no hook
        yield_point()
    finally:
        set_yield_hook(None)
    yield_point()
    assert calls == ["main"]


def test_block_hooks_on_a_reference_encoder():
    torch = pytest.importorskip("torch")

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    enc = Encoder()
    assert add_block_yield_points(enc) == 3
    calls = []
    set_yield_hook(lambda: calls.append(1))
    try:
        enc(torch.zeros(1, 4))
    finally:
        set_yield_hook(None)
    assert len(calls) == 3


class SlowFake(FakeModel):
    """An encoder made of 20 steps of 10 ms with a yield point before each."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def embed(self, image: np.ndarray) -> Embedding:
        for _ in range(20):
            yield_point()
            time.sleep(0.01)
            self.steps += 1
        return super().embed(image)


def _gated_prefetcher(vol, radius: int, pauses_often: bool = False):
    """A SlowFake session and its prefetcher, which pauses while the session is busy."""
    model = SlowFake()
    model.pauses_often = pauses_often
    sess = Session(vol, model=model)
    pre = Prefetcher(
        sess.embed,
        sess.cache.__contains__,
        vol.shape[0],
        radius=radius,
        thread_setup=sess.background_setup,
    )
    return model, sess, pre


def test_prefetcher_pauses_during_interactive_work_and_resumes(two_balls):
    vol, _, _ = two_balls
    model, sess, pre = _gated_prefetcher(vol, radius=3)
    try:
        pre.request(0)
        time.sleep(0.1)  # inside the first forward
        with sess.foreground():
            time.sleep(0.05)  # the forward reaches its next yield point and stops there
            before = model.steps
            time.sleep(0.3)
            assert model.steps == before, "the prefetcher kept computing during a click"
        deadline = time.time() + 10
        while len(sess.cache) < 4 and time.time() < deadline:
            time.sleep(0.05)
        assert len(sess.cache) == 4  # slices 0..3 (radius 3), once the click was served
        assert sess.gate.pauses >= 1
    finally:
        pre.stop()


def test_a_click_waits_for_a_forward_that_pauses_often_to_reach_its_pause_point(two_balls):
    vol, _, _ = two_balls
    model, sess, pre = _gated_prefetcher(vol, radius=3, pauses_often=True)
    assert sess.gate.settle_s > 0.01
    try:
        pre.request(0)
        time.sleep(0.1)  # inside the first forward, between two of its pause points
        for _ in range(3):
            with sess.foreground():
                before = model.steps  # no step of the forward overlaps the click
                time.sleep(0.05)
                assert model.steps == before
            time.sleep(0.035)
    finally:
        pre.stop()
    assert Session(vol, model=SlowFake()).gate.settle_s == 0.0


def test_a_click_on_the_slice_being_prefetched_does_not_deadlock(two_balls):
    vol, _, _ = two_balls
    model, sess, pre = _gated_prefetcher(vol, radius=0)
    z = vol.shape[0] // 2
    try:
        pre.request(z)
        time.sleep(0.05)  # the prefetcher owns slice z's forward
        obj = sess.new_object()
        box = (2.0, 2.0, vol.shape[2] - 3.0, vol.shape[1] - 3.0)
        result = []
        thread = _in_thread(lambda: result.append(sess.add_box(obj, z, box)))
        thread.join(10)
        assert not thread.is_alive(), "the click waited forever for the paused prefetcher"
        assert result and result[0].any()
        assert len(model.embed_calls) == 1  # slice z was embedded once, by the prefetcher
    finally:
        pre.stop()


def _background_forward(gate: ForegroundGate, work_s: float, log: list) -> threading.Event:
    """A registered background thread that computes for ``work_s`` before its first pause
    point, then logs when it resumes. Returns an event set once it is working."""
    started = threading.Event()

    def run():
        gate.register_background()
        with gate.working():
            started.set()
            time.sleep(work_s)
            log.append(("paused", time.perf_counter()))
            gate.wait_idle()
            log.append(("resumed", time.perf_counter()))

    _in_thread(run)
    assert started.wait(2)
    return started


def test_interactive_work_waits_for_a_background_forward_to_pause():
    gate = ForegroundGate(settle_s=2.0)
    log: list = []
    _background_forward(gate, 0.2, log)
    with gate.busy():
        entered = time.perf_counter()
        assert log and log[0][0] == "paused", "busy() did not wait for the pause point"
        assert entered >= log[0][1]
        time.sleep(0.05)
        left = time.perf_counter()
    for _ in range(200):
        if len(log) == 2:
            break
        time.sleep(0.01)
    assert log[1][0] == "resumed" and log[1][1] >= left


def test_the_wait_for_a_pause_point_is_bounded_and_skipped_when_nothing_runs():
    gate = ForegroundGate(settle_s=0.05)
    t0 = time.perf_counter()
    with gate.busy():  # no background thread at all
        assert time.perf_counter() - t0 < 0.04
    log: list = []
    _background_forward(gate, 1.0, log)
    t0 = time.perf_counter()
    with gate.busy():
        waited = time.perf_counter() - t0
        assert 0.04 <= waited < 0.5 and not log, "the wait was not bounded by settle_s"
    unregistered = ForegroundGate(settle_s=1.0)

    def click():
        with unregistered.busy():
            pass

    with unregistered.working():  # a thread that is not registered is not waited for
        t0 = time.perf_counter()
        _in_thread(click).join(2)
        assert time.perf_counter() - t0 < 0.5
