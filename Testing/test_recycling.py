"""Output volumes are recycled only when nothing refers to them any more: a result that is
still held is never written over, whatever holds it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from MedSynthCommonLib import recycling
from SynthLesionLib import LesionConfig, synthesize_lesions

SHAPE = (40, 64, 64)


@pytest.fixture
def slots(monkeypatch):
    """Recycling of small volumes, with empty slots before and after."""
    monkeypatch.setattr(recycling, "RECYCLE_FROM_BYTES", 1)
    monkeypatch.delenv("MEDSYNTH_RECYCLE", raising=False)
    recycling.release()
    yield
    recycling.release()


def test_a_volume_is_given_again_only_when_nothing_refers_to_it(slots):
    first, second = recycling.new_volume(SHAPE, np.int16), recycling.new_volume(SHAPE, np.int16)
    assert not np.shares_memory(first, second)
    holders = {"a view": lambda a: a[3:9, ::2], "a memoryview": memoryview, "a list": lambda a: [a],
               "the array": lambda a: a}
    try:
        import torch
    except ImportError:  # Slicer's Python without the PyTorch extension
        pass
    else:
        holders["a tensor"] = torch.from_numpy
    for name, hold in holders.items():
        kept = hold(first)
        del first
        again = recycling.new_volume(SHAPE, np.int16)
        assert not np.shares_memory(again, np.asarray(kept[0] if isinstance(kept, list) else kept)), name
        del kept, again  # a slot is free again: the next volume is that one, not a new one
        kept_now = {slot.__array_interface__["data"][0] for slot in recycling._slots}  # (addresses hold no reference)
        first = recycling.new_volume(SHAPE, np.int16)
        assert first.__array_interface__["data"][0] in kept_now, name
    other = recycling.new_volume(SHAPE, np.float32)  # another type: a new volume, the oldest slot let go
    assert not np.shares_memory(other.view(np.uint8), first.view(np.uint8))
    assert len(recycling._slots) == recycling.SLOTS


def test_recycling_is_off_for_small_or_large_volumes_or_when_asked(slots, monkeypatch):
    monkeypatch.setattr(recycling, "RECYCLE_UP_TO_BYTES", 10_000)
    recycling.new_volume(SHAPE, np.int16)
    assert recycling._slots == []
    monkeypatch.setattr(recycling, "RECYCLE_UP_TO_BYTES", 2**40)
    monkeypatch.setenv("MEDSYNTH_RECYCLE", "0")
    recycling.new_volume(SHAPE, np.int16)
    assert recycling._slots == []


def test_threads_never_get_one_volume_at_once(slots):
    """Four threads take and drop volumes: no two volumes in use at the same time share memory."""
    live, lock, clashes = [], threading.Lock(), []

    def work(seed):
        for _ in range(60):
            volume = recycling.new_volume(SHAPE, np.int16)
            with lock:
                clashes.extend(1 for other in live if np.shares_memory(other, volume))
                live.append(volume)
            volume[seed] = seed
            with lock:
                live[:] = [other for other in live if other is not volume]
            del volume

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clashes == []


def test_held_results_stay_as_made_while_later_calls_recycle(slots, ct_phantom):
    """In a loop that keeps some results and drops the others, every kept image stays what its
    call made, and later calls reuse the memory of the dropped ones."""
    organ = ct_phantom.organ_mask("liver")
    config = LesionConfig(size_class="small")
    kept, made, addresses = {}, {}, []
    for seed in range(9):
        result = synthesize_lesions(ct_phantom.image, organ, ct_phantom.geometry, config, seed)
        made[seed] = result.image.copy()
        addresses.append(result.image.__array_interface__["data"][0])
        if seed % 3 == 0:
            kept[seed] = result
    for seed, held in kept.items():
        assert np.array_equal(held.image, made[seed])
    assert len(set(addresses)) < len(addresses) - 3  # most calls reused a dropped result's memory


def test_calls_leave_no_reference_cycle_to_free_their_image(slots, ct_phantom):
    """A result's image is let go (and recycled) as soon as the caller drops it, with no wait for
    the garbage collector: no call leaves a reference cycle behind, also when lesions fitted
    nowhere and were redrawn, or when the call failed."""
    import gc

    from SynthLesionLib.errors import PlacementError

    organ = ct_phantom.organ_mask("liver")
    configs = [LesionConfig(size_class="small"),
               LesionConfig(size_class="large", count=8, max_attempts=64),  # redrawn, and some left out
               LesionConfig(size_class="large", count=8, max_attempts=64, allow_fewer=False)]  # fails
    gc.collect()
    gc.disable()
    try:
        outcomes = []
        for seed, config in enumerate(configs):
            try:
                result = synthesize_lesions(ct_phantom.image, organ, ct_phantom.geometry, config, seed)
                outcomes.append(len(result.records))
                del result
            except PlacementError:
                outcomes.append("failed")
            assert gc.collect() == 0, (config, outcomes)
    finally:
        gc.enable()
    assert outcomes[0] == 1 and 1 <= outcomes[1] < 8 and outcomes[2] == "failed", outcomes
