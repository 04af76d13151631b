"""MicroBatcher: batches form from concurrent callers, the model runs in its own thread, cancelled
images never reach it, a full queue is refused up front, failures stay with their batch.

The recording model below stands in for the classifier where the test is about scheduling; one
test runs the real classifier to show batched answers equal direct ones.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Sequence

import pytest
from PIL import Image

from fixtures.data import image
from medlens.errors import MedLensError
from medlens.ingest.decode import decode_image
from medlens.model.classifier import Classifier, Prediction
from medlens.fairness import start_request
from medlens.pipeline.batcher import MicroBatcher, QueueFull
from medlens.settings import Settings


def tagged(tag: int) -> Image.Image:
    """A tiny image whose width carries its identity through the model."""
    return Image.new("RGB", (tag + 1, 1))


class RecordingModel:
    """Answers each image with probability = its tag / 1000; records batches and threads."""

    def __init__(self, gate: threading.Event | None = None, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.thresholds: list[float | None] = []
        self.threads: set[str] = set()
        self.gate = gate
        self.fail_on = fail_on
        self.entered = threading.Event()

    def __call__(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Prediction]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        tags = [im.width - 1 for im in images]
        self.batches.append(tags)
        self.thresholds.append(threshold)
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and self.fail_on in tags:
            raise RuntimeError("model exploded")
        return [Prediction("medical", t / 1000, None) for t in tags]


async def test_concurrent_images_are_batched_and_answered_each_with_its_own_prediction() -> None:
    model = RecordingModel()
    async with MicroBatcher(model, max_batch=4, max_wait_ms=50, queue_max=100) as batcher:
        answers = await asyncio.gather(*(batcher.classify(tagged(i)) for i in range(10)))
        assert [a.probability for a in answers] == [i / 1000 for i in range(10)]
        assert sorted(t for b in model.batches for t in b) == list(range(10))
        assert max(len(b) for b in model.batches) == 4 and len(model.batches) == 3
        assert (batcher.stats.images, batcher.stats.batches, batcher.stats.largest) == (10, 3, 4)
    assert model.threads == {"medlens-model_0"}
    assert threading.current_thread().name not in model.threads


async def test_a_lone_image_is_answered_after_the_wait() -> None:
    model = RecordingModel()
    async with MicroBatcher(model, max_batch=16, max_wait_ms=5, queue_max=10) as batcher:
        answer = await asyncio.wait_for(batcher.classify(tagged(7)), 5)
    assert answer.probability == 0.007 and model.batches == [[7]]


async def test_cancelled_images_cost_no_model_time() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    async with MicroBatcher(model, max_batch=1, max_wait_ms=0, queue_max=10) as batcher:
        first = asyncio.ensure_future(batcher.classify(tagged(1)))
        await asyncio.to_thread(model.entered.wait, 10)  # the model is busy with image 1
        doomed = asyncio.ensure_future(batcher.classify(tagged(2)))
        kept = asyncio.ensure_future(batcher.classify(tagged(3)))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        assert batcher.depth == 1 and batcher.stats.cancelled == 1
        gate.set()
        assert (await first).probability == 0.001 and (await kept).probability == 0.003
    assert model.batches == [[1], [3]]


async def test_full_queue_is_refused_and_admitted_work_waits_for_room() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    async with MicroBatcher(model, max_batch=2, max_wait_ms=0, queue_max=2) as batcher:
        batcher.check_capacity()
        futures = [asyncio.ensure_future(batcher.classify(tagged(i))) for i in range(7)]
        await asyncio.to_thread(model.entered.wait, 10)
        await asyncio.sleep(0.01)
        assert batcher.depth == 2 and batcher.full  # 2 in the model, 2 queued, 3 waiting for room
        with pytest.raises(QueueFull) as info:
            batcher.check_capacity(retry_after_s=4)
        assert (info.value.code, info.value.http_status, info.value.retry_after_s) == ("queue_full", 503, 4)
        gate.set()
        answers = await asyncio.gather(*futures)
    assert [a.probability for a in answers] == [i / 1000 for i in range(7)]
    assert all(len(b) <= 2 for b in model.batches)


async def test_a_failing_batch_fails_only_its_images() -> None:
    model = RecordingModel(fail_on=3)
    async with MicroBatcher(model, max_batch=2, max_wait_ms=20, queue_max=10) as batcher:
        results = await asyncio.gather(*(batcher.classify(tagged(i)) for i in (3, 4)), return_exceptions=True)
        assert all(isinstance(r, MedLensError) and r.code == "model_error" for r in results)
        assert (await batcher.classify(tagged(5))).probability == 0.005


async def test_thresholds_are_grouped_within_a_batch() -> None:
    model = RecordingModel()
    async with MicroBatcher(model, max_batch=8, max_wait_ms=50, queue_max=10) as batcher:
        await asyncio.gather(batcher.classify(tagged(1), 0.3), batcher.classify(tagged(2)), batcher.classify(tagged(3), 0.3))
    assert sorted(zip(model.thresholds, model.batches), key=str) == sorted([(0.3, [1, 3]), (None, [2])], key=str)


async def test_close_fails_what_is_queued_and_refuses_new_work() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    batcher = MicroBatcher(model, max_batch=1, max_wait_ms=0, queue_max=10)
    await batcher.start()
    running = asyncio.ensure_future(batcher.classify(tagged(1)))
    await asyncio.to_thread(model.entered.wait, 10)
    queued = asyncio.ensure_future(batcher.classify(tagged(2)))
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    gate.set()
    await closing
    for fut in (running, queued):
        with pytest.raises(MedLensError) as info:
            await fut
        assert info.value.code == "model_error"
    with pytest.raises(MedLensError):
        await batcher.classify(tagged(3))
    assert model.batches == [[1]]


async def test_batched_answers_equal_direct_ones(classifier: Classifier) -> None:
    settings = Settings()
    rels = ["medical/xray/pydicom-data_RG1_J2KI.jpg", "non-medical/chart/charts-sklearn-data_area_0.png",
            "medical/mri/itk-examples_BrainT1Slice.jpg", "non-medical/photo/skimage-data_astronaut.jpg"]
    images = [decode_image(image(r).read_bytes(), settings).image for r in rels]
    direct = [classifier.classify([im])[0] for im in images]
    async with MicroBatcher.for_classifier(classifier, settings) as batcher:
        batched = await asyncio.gather(*(batcher.classify(im) for im in images))
    assert [p.label for p in batched] == [p.label for p in direct] == ["medical", "non-medical", "medical", "non-medical"]
    assert [p.probability for p in batched] == pytest.approx([p.probability for p in direct], abs=1e-4)


async def _one_request(batcher: MicroBatcher, tags: range) -> list[Prediction]:
    """The images of one request, as the routes queue them: in a task marked as its own request."""
    start_request()
    return list(await asyncio.gather(*(batcher.classify(tagged(t)) for t in tags)))


@pytest.mark.parametrize(("order", "batch_of_the_lone_image"), [("fair", 1), ("fifo", 5)])
async def test_a_lone_image_is_not_queued_behind_a_scan(order: str, batch_of_the_lone_image: int) -> None:
    """A right-click on one image while a page scan of 64 waits: round-robin puts it in the next
    batch; first in, first out (kept as a switch, for benchmarks) made it wait for the whole scan."""
    gate = threading.Event()
    model = RecordingModel(gate)
    async with MicroBatcher(model, max_batch=16, max_wait_ms=0, queue_max=200, queue_order=order) as batcher:
        first = asyncio.ensure_future(_one_request(batcher, range(900, 901)))
        await asyncio.to_thread(model.entered.wait, 10)  # the model is busy
        scan = asyncio.ensure_future(_one_request(batcher, range(100, 164)))
        await asyncio.sleep(0.01)
        lone = asyncio.ensure_future(_one_request(batcher, range(7, 8)))
        await asyncio.sleep(0.01)
        assert batcher.depth == 65
        gate.set()
        assert [p.probability for p in await lone] == [0.007]
        assert [p.probability for p in await scan] == [t / 1000 for t in range(100, 164)]
        await first
    position = next(i for i, b in enumerate(model.batches) if 7 in b)
    assert position == batch_of_the_lone_image
    assert sorted(t for b in model.batches for t in b) == [7, *range(100, 164), 900]


async def test_requests_take_turns_within_a_batch() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    async with MicroBatcher(model, max_batch=6, max_wait_ms=0, queue_max=100) as batcher:
        first = asyncio.ensure_future(_one_request(batcher, range(900, 901)))
        await asyncio.to_thread(model.entered.wait, 10)
        requests = [asyncio.ensure_future(_one_request(batcher, range(k * 10, k * 10 + 5))) for k in range(3)]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *requests)
    assert model.batches[1] == [0, 10, 20, 1, 11, 21]  # one from each request in turn, in arrival order
    assert model.batches[2] == [2, 12, 22, 3, 13, 23]


async def test_a_cancelled_request_leaves_the_rotation() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    async with MicroBatcher(model, max_batch=4, max_wait_ms=0, queue_max=100) as batcher:
        first = asyncio.ensure_future(_one_request(batcher, range(900, 901)))
        await asyncio.to_thread(model.entered.wait, 10)
        doomed = asyncio.ensure_future(_one_request(batcher, range(0, 5)))
        kept = asyncio.ensure_future(_one_request(batcher, range(10, 13)))
        await asyncio.sleep(0.01)
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        assert batcher.depth == 3
        gate.set()
        await asyncio.gather(first, kept)
    assert model.batches[1:] == [[10, 11, 12]]


def test_an_unknown_queue_order_is_refused() -> None:
    with pytest.raises(MedLensError) as info:
        MicroBatcher(RecordingModel(), max_batch=1, max_wait_ms=0, queue_max=1, queue_order="lifo")
    assert info.value.code == "invalid_request"
