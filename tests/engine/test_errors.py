"""CPU out of memory is out of memory too (issue 9, item 13)."""

import threading

import pytest

from studio.core.errors import ErrorKind
from studio.core.events import JobFailed
from studio.core.generation.request import GenerationRequest
from studio.core.storage.outputs import OutputWriter
from studio.engine import engine as engine_module
from studio.engine.engine import Engine
from studio.engine.errors import is_out_of_memory, to_studio_error

GPU_OOM = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")
CPU_OOMS = [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("[enforce fail at C:\\actions-runner\\_work\\pytorch\\c10\\core\\impl\\alloc_cpu.cpp:72] data. "
                 "DefaultCPUAllocator: not enough memory: you tried to allocate 4294967296 bytes."),  # Windows
    MemoryError(),
]


@pytest.mark.parametrize("exc", CPU_OOMS, ids=["linux", "windows", "MemoryError"])
def test_cpu_out_of_memory_is_classified_like_gpu_out_of_memory(exc):
    assert is_out_of_memory(exc)
    error, gpu = to_studio_error(exc), to_studio_error(GPU_OOM)
    assert error.kind is ErrorKind.OUT_OF_MEMORY
    assert error.hint == gpu.hint  # the same advice: smaller size or batch, close other programs
    assert "memory" in error.message


def test_other_runtime_errors_stay_internal():
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert to_studio_error(RuntimeError("shape mismatch")).kind is ErrorKind.INTERNAL


@pytest.mark.parametrize("exc", CPU_OOMS, ids=["linux", "windows", "MemoryError"])
def test_engine_frees_memory_after_cpu_out_of_memory(tmp_path, monkeypatch, exc):
    freed = []
    monkeypatch.setattr(engine_module, "free_device_memory", lambda: freed.append(True))
    events = []
    engine = Engine(OutputWriter(tmp_path / "out"), events.append)

    def load(*args, **kwargs):
        raise exc

    monkeypatch.setattr(engine, "load", load)
    engine.generate(GenerationRequest("a cat", model="/m", width=64, height=64), threading.Event())
    failed = [e for e in events if isinstance(e, JobFailed)]
    assert len(failed) == 1 and failed[0].error.kind is ErrorKind.OUT_OF_MEMORY
    assert freed == [True]


def test_a_studio_error_keeps_its_message_through_a_context_manager():
    """Jobs run inside context managers (LoRAs); the error the artist sees must be the real one."""
    from contextlib import contextmanager

    import pytest

    from studio.core.errors import ErrorKind, StudioError

    @contextmanager
    def around():
        yield

    with pytest.raises(StudioError, match="The mask is empty"):
        with around():
            raise StudioError(ErrorKind.BAD_INPUT, "The mask is empty.")
