"""Prefetching order, cancellation by newer requests, and the cache's de-duplication."""

from __future__ import annotations

import threading
import time

import numpy as np

from fakes import PackingModel
from slicesam.engine import Session
from slicesam.engine.cache import EmbeddingCache
from slicesam.engine.prefetch import Prefetcher, nearest_first
from slicesam.models.base import Embedding


def emb(nbytes: int = 10) -> Embedding:
    return Embedding(None, (1, 1), (1, 1), nbytes)


def test_nearest_first_order():
    assert nearest_first(5, 20, 2) == [5, 6, 4, 7, 3]
    assert nearest_first(0, 3, 3) == [0, 1, 2]


def test_cache_lru_budget():
    cache = EmbeddingCache("sig", max_bytes=25)
    for z in range(3):
        cache.put(z, emb())
    assert 0 not in cache and 1 in cache and 2 in cache
    cache.get(1)
    cache.put(3, emb())
    assert 2 not in cache and 1 in cache


def test_cache_computes_a_slice_once_for_two_threads():
    cache = EmbeddingCache("sig")
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return emb()

    threads = [threading.Thread(target=cache.get_or_compute, args=(7, slow)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and 7 in cache


def test_prefetcher_embeds_around_the_slice_in_view(two_balls, fake_model):
    vol, _, _ = two_balls
    sess = Session(vol, model=fake_model)
    statuses = []
    pre = Prefetcher(
        sess.embed, sess.cache.__contains__, vol.shape[0], radius=2, on_status=statuses.append
    )
    try:
        pre.request(10)
        deadline = time.time() + 10
        while "idle" not in statuses and time.time() < deadline:
            time.sleep(0.01)
        assert all(z in sess.cache for z in (8, 9, 10, 11, 12))
        assert 7 not in sess.cache and 13 not in sess.cache
        assert statuses[0] == "embedding slice 10"
    finally:
        pre.stop()
    assert not pre.alive


def test_a_new_request_replaces_the_old_one(two_balls):
    order = []
    started = threading.Event()

    def embed(z):
        order.append(z)
        started.set()
        time.sleep(0.05)
        return emb()

    pre = Prefetcher(embed, lambda z: z in order, n_slices=100, radius=10)
    try:
        pre.request(50)
        started.wait(5)
        pre.request(5)
        time.sleep(1.5)
    finally:
        pre.stop()
    assert order[0] == 50
    assert 5 in order[:3]  # the new request took over after at most one more slice
    assert len([z for z in order if 40 <= z <= 60]) < 21


def test_prefetch_errors_are_reported_not_raised():
    def embed(z):
        raise RuntimeError("out of memory")

    statuses = []
    pre = Prefetcher(embed, lambda z: False, n_slices=5, on_status=statuses.append)
    pre.request(2)
    deadline = time.time() + 5
    while pre.error is None and time.time() < deadline:
        time.sleep(0.01)
    pre.stop()
    assert isinstance(pre.error, RuntimeError)
    assert any("failed" in s for s in statuses)


def test_disk_cache_makes_a_second_session_start_warm(two_balls, tmp_path):
    vol, a, _ = two_balls
    first = PackingModel()
    sess = Session(vol, model=first, disk_cache=tmp_path)
    obj = sess.new_object()
    sess.add_point(obj, 10, 20, 18)
    sess.propagate(obj)
    embedded = len(first.embed_calls)
    assert embedded > 5
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "fake" in (folder / "signature.txt").read_text()
    assert len(list(folder.glob("z*.npz"))) == embedded

    second = PackingModel()
    again = Session(vol, model=second, disk_cache=tmp_path)
    obj = again.new_object()
    again.add_point(obj, 10, 20, 18)
    again.propagate(obj)
    assert second.embed_calls == [], "every slice came from disk"
    assert again.cache.disk_hits == embedded
    assert np.array_equal(again.labels, sess.labels)

    other_window = Session(vol, model=PackingModel(), disk_cache=tmp_path, window=(0, 100))
    assert other_window.cache.store.folder != folder, "another window is another signature"


def test_unreadable_disk_entries_are_recomputed(two_balls, tmp_path):
    vol, _, _ = two_balls
    sess = Session(vol, model=PackingModel(), disk_cache=tmp_path)
    sess.embed(3)
    (path,) = sess.cache.store.folder.glob("z00003.npz")
    path.write_bytes(b"truncated")
    model = PackingModel()
    again = Session(vol, model=model, disk_cache=tmp_path)
    assert again.embed(3) is not None and len(model.embed_calls) == 1
    assert again.cache.store.get(3) is not None, "the bad file was replaced"


def test_thread_setup_runs_in_the_prefetch_thread():
    seen = []
    pre = Prefetcher(
        lambda z: seen.append(("embed", threading.current_thread().name)),
        lambda z: False,
        n_slices=3,
        thread_setup=lambda: seen.append(("setup", threading.current_thread().name)),
    )
    pre.request(1)
    deadline = time.time() + 5
    while len(seen) < 4 and time.time() < deadline:
        time.sleep(0.01)
    pre.stop()
    assert seen[0] == ("setup", "slicesam-prefetch")
    assert {name for _, name in seen} == {"slicesam-prefetch"}


def test_stop_ends_a_forward_at_its_next_pause_point():
    """Closing the viewer while a slice is being embedded: the forward stops at its next
    pause point and the thread ends (a thread left inside torch at exit aborts Python)."""
    from slicesam.models.yield_points import yield_point

    started = threading.Event()

    def endless_forward(z):
        started.set()
        while True:  # a forward that only ends when a pause point raises
            yield_point()
            time.sleep(0.001)

    pre = Prefetcher(endless_forward, lambda z: False, n_slices=10)
    pre.request(3)
    assert started.wait(5)
    (thread,) = [t for t in threading.enumerate() if t.name == "slicesam-prefetch"]
    assert not thread.daemon, "a daemon thread would be killed inside the model at exit"
    t0 = time.perf_counter()
    assert pre.stop(timeout=5)
    assert time.perf_counter() - t0 < 1.0 and not pre.alive
    pre.request(4)  # stopped for good
    assert not pre.alive


def test_the_thread_ends_when_idle_and_starts_again_on_request():
    done = []
    pre = Prefetcher(done.append, lambda z: z in done, n_slices=4, radius=1, idle_exit_s=0.05)
    assert not pre.alive  # nothing requested yet
    pre.request(0)
    deadline = time.time() + 5
    while (pre.alive or len(done) < 2) and time.time() < deadline:
        time.sleep(0.01)
    assert sorted(done) == [0, 1] and not pre.alive
    pre.request(3)
    while (pre.alive or len(done) < 4) and time.time() < deadline:
        time.sleep(0.01)
    assert sorted(done) == [0, 1, 2, 3]
    pre.stop()
