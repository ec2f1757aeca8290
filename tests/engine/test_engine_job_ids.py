"""Issue 12 items 4 and 7 in the engine: every job event carries the job's id, and with
save_images=False the images come unsaved (path None) for a writer thread, pixels intact."""

import threading

import numpy as np

from studio.core.events import ImageFinished, JobCancelled, JobFinished, JobStarted, ModelLoaded, StepProgress
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.engine.engine import Engine


def _request(model, **changes):
    base = dict(prompt="a red circle", steps=2, width=64, height=64, seed=7, sampler="Euler", model=str(model))
    return GenerationRequest(**{**base, **changes})


def test_job_events_carry_the_job_id_and_images_come_unsaved(tmp_path, tiny_model_dir):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    engine.generate(_request(tiny_model_dir, batch_count=2), threading.Event(), job_id="job-1", save_images=False)
    job_events = [e for e in events if not isinstance(e, ModelLoaded) and type(e).__name__ != "ModelLoading"]
    assert {type(e) for e in job_events} == {JobStarted, StepProgress, ImageFinished, JobFinished}
    assert {e.job_id for e in job_events} == {"job-1"}
    images = [e for e in events if isinstance(e, ImageFinished)]
    assert [i.path for i in images] == [None, None]
    assert [i.request.seed for i in images] == [7, 8]
    assert all(i.image.shape == (64, 64, 3) and i.image.dtype == np.uint8 for i in images)
    assert events[-1].paths == ()
    assert not (tmp_path / "out").exists(), "nothing written: the caller writes"


def test_the_default_still_saves_and_a_cancel_is_tagged(tmp_path, tiny_model_dir):
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)
    engine.generate(_request(tiny_model_dir), threading.Event())
    image = next(e for e in events if isinstance(e, ImageFinished))
    assert image.path.is_file() and image.job_id == ""
    cancel = threading.Event()
    cancel.set()
    engine.generate(_request(tiny_model_dir), cancel, job_id="job-2")
    assert isinstance(events[-1], JobCancelled) and events[-1].job_id == "job-2"
