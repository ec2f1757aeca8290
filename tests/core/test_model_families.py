"""The family registry: one detector per family, asked in order, each claiming only its own files."""

import pytest

from studio.core.models import model_detect
from studio.core.models.detectors import DETECTORS, detector_for, supported_labels
from studio.core.models.detectors.base import Detector
from studio.core.models.family import Family, ModelInfo
from studio.core.models.model_detect import inspect_model
from studio.core.models.safetensors_header import read_header
from tests.lora_files import write_header_only_lora as write_tensors

CONV = {"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}
MARKS = {  # the least a checkpoint of each family holds for its detector
    "sd1": CONV,
    "sd2": {**CONV, "cond_stage_model.model.token_embedding.weight": (4, 2)},
    "sdxl": {**CONV, "conditioner.embedders.1.model.positional_embedding": (2, 2)},
}


def test_every_family_has_exactly_one_detector():
    assert sorted(d.family.value for d in DETECTORS) == sorted(f.value for f in Family)
    assert all(detector_for(d.family) is d for d in DETECTORS)


def test_messages_name_the_families_the_studio_runs():
    assert supported_labels() == "SD 1.x, SD 2.x, SDXL and Flux.1"
    assert [f.label for f in Family] == ["SD 1.x", "SD 2.x", "SDXL", "Flux.1"]


@pytest.mark.parametrize("family", sorted(MARKS))
def test_each_detector_claims_its_own_files_and_no_other_family_does(tmp_path, family):
    header = read_header(write_tensors(tmp_path / f"{family}.safetensors", MARKS[family]))
    claims = [d.family.value for d in DETECTORS if d.matches_file(header)]
    assert claims[0] == family  # the first to claim it reads it (SD 1.x claims every SD UNet, asked last)
    assert inspect_model(header.path).family is Family(family)


def test_a_new_family_is_one_more_detector(tmp_path, monkeypatch):
    """inspect_model asks the registry, nothing else: a detector added to it is asked first."""

    class Marked(Detector):
        family = Family.SD1
        label = "Marked"

        def matches_file(self, header):
            return "marked.weight" in header.tensors

        def inspect_file(self, header):
            return ModelInfo(header.path, True, self.family, size_bytes=header.file_size)

    monkeypatch.setattr(model_detect, "DETECTORS", (Marked(), *DETECTORS))
    path = write_tensors(tmp_path / "marked.safetensors", {**MARKS["sdxl"], "marked.weight": (1,)})
    info = inspect_model(path)
    assert (info.family, info.prediction) == (Family.SD1, None)  # Marked's reading (SDXL's would say epsilon)
    assert inspect_model(write_tensors(tmp_path / "xl.safetensors", MARKS["sdxl"])).family is Family.SDXL


def test_a_familys_recommended_settings_fill_what_studio_json_leaves_out(tmp_path, monkeypatch):
    from studio.core.models.detectors.sd1 import SD1Detector
    from studio.core.models.model_info import model_defaults

    path = write_tensors(tmp_path / "one.safetensors", MARKS["sd1"])
    assert (model_defaults(path).width, model_defaults(path).steps) == (512, None)  # SD 1.x recommends no steps
    monkeypatch.setattr(SD1Detector, "default_steps", 30)
    monkeypatch.setattr(SD1Detector, "default_guidance", 3.5)
    defaults = model_defaults(path)
    assert (defaults.width, defaults.height, defaults.steps, defaults.guidance, defaults.sampler) == (512, 512, 30, 3.5, None)
