"""studio.dev.bench_queue runs end to end on the tiny model (small sizes here; the 1024 px run is
the benchmark's own) and every mode puts every image on disk."""

from studio.dev.bench_queue import bench_save_modes


def test_bench_save_modes_runs_and_writes_every_image(tmp_path, tiny_model_dir):
    result = bench_save_modes(str(tiny_model_dir), tmp_path, size=64, batch=2, steps=1)
    assert set(result) >= {"bare", "sync", "writer", "sync_ratio", "writer_ratio", "png_encode_s"}
    assert all(result[name] > 0 for name in ("bare", "sync", "writer"))
    assert len(list((tmp_path / "sync").rglob("*.png"))) == 2
    assert len(list((tmp_path / "writer").rglob("*.png"))) == 2
