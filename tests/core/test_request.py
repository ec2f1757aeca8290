import pytest

from studio.core.generation.request import GenerationRequest, InvalidRequest, Mode


def test_valid_request_canonicalises_sampler():
    request = GenerationRequest("a cat", sampler="euler A").validated()
    assert request.sampler == "Euler a"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"width": 500}, "Width 500 is not a multiple of 8 (try 496)"),
        ({"height": 32}, "outside 64..4096"),
        ({"steps": 0}, "Steps must be between 1"),
        ({"guidance": -1.0}, "Guidance must be between"),
        ({"seed": -5}, "Seed must be between"),
        ({"sampler": "Magic"}, "Unknown sampler 'Magic'"),
        ({"batch_count": 0}, "Batch count"),
        ({"mode": Mode.INPAINT, "init_image": "x.png"}, "needs a mask"),
    ],
)
def test_invalid_requests_say_what_is_wrong(changes, fragment):
    with pytest.raises(InvalidRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        GenerationRequest("a cat", **changes).validated()


def test_dict_round_trip_is_exact():
    request = GenerationRequest("a cat\nsecond line", "ugly", 31, 6.5, 4294967295, 640, 448, "DDIM", 3, "/m")
    assert GenerationRequest.from_dict(request.to_dict()) == request


def test_from_dict_tolerates_unknown_keys_and_rejects_bad_types():
    data = GenerationRequest("x").to_dict() | {"future_option": 1}
    assert GenerationRequest.from_dict(data).prompt == "x"
    with pytest.raises(InvalidRequest):
        GenerationRequest.from_dict({"prompt": "x", "steps": "many"})
    with pytest.raises(InvalidRequest):
        GenerationRequest.from_dict({"steps": 3})


def test_batch_images_get_consecutive_seeds():
    request = GenerationRequest("x", seed=10, batch_count=3)
    assert [request.for_image(i).seed for i in range(3)] == [10, 11, 12]
    assert request.for_image(2).batch_count == 1
    assert GenerationRequest("x", seed=2**32 - 1).for_image(1).seed == 0


# -- types, sizes and text the Python API can pass (issue 9, items 9 and 16) --------------------
@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"steps": 2.5}, "Steps must be a whole number, not 2.5"),
        ({"seed": float("inf")}, "Seed must be a whole number"),
        ({"width": "wide"}, "Width must be a whole number"),
        ({"guidance": float("nan")}, "Guidance must be a number"),
        ({"strength": 10**400}, "Strength must be a number"),
        ({"batch_count": True}, "Batch count must be a whole number"),
        ({"prompt": None}, "Prompt must be valid"),
        ({"mode": "sideways"}, "Mode must be valid"),
        ({"prompt": "a cat \udcff"}, "The prompt contains characters that are not valid text"),
        ({"negative_prompt": "\ud800"}, "The negative prompt contains characters"),
        ({"prompt": "x" * 20_001}, "The prompt has 20,001 characters; at most 20,000"),
        ({"negative_prompt": "y" * 1_000_000}, "The negative prompt has 1,000,000 characters"),
    ],
)
def test_wrong_types_and_unusable_text_are_refused(changes, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        GenerationRequest(**({"prompt": "a cat"} | changes)).validated()


def test_whole_numbers_of_other_types_are_converted_so_the_request_reads_back():
    request = GenerationRequest("a cat", steps=20.0, seed=7.0, guidance=5, mode="txt2img").validated()
    assert (type(request.steps), type(request.seed), type(request.guidance)) == (int, int, float)
    assert request.mode is Mode.TXT2IMG
    assert GenerationRequest.from_dict(request.to_dict()) == request
    assert GenerationRequest("x" * 20_000).validated().prompt == "x" * 20_000  # the cap itself is fine


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e400, "1e400", "-Infinity"])
def test_from_dict_refuses_non_finite_numbers_as_invalid_requests(value):
    for key in ("steps", "seed", "guidance", "strength"):
        with pytest.raises(InvalidRequest):  # not OverflowError, which no caller expects
            GenerationRequest.from_dict({"prompt": "x", key: value})
    with pytest.raises(InvalidRequest):
        GenerationRequest.from_dict({"prompt": "x", "guidance": 10**400})  # beyond float's range


def test_huge_whole_numbers_read_back_and_then_fail_validation_with_a_range_message():
    request = GenerationRequest.from_dict({"prompt": "x", "steps": 10**30})
    with pytest.raises(InvalidRequest, match="Steps must be between 1 and 150"):
        request.validated()
