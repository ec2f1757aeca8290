import pytest

from studio.core.request import GenerationRequest, InvalidRequest, Mode


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
