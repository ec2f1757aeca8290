"""A1111's prompt language, parsed without torch.

Extra networks first: A1111 takes `<kind:args>` tags (`<lora:name:0.8>`, `<hypernet:...>`) out of
the prompt before anything else reads it (modules/extra_networks.py, `re_extra_net`); the tags
stay in the saved prompt text, so an image's prompt can be pasted back as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # A1111's re_extra_net


@dataclass(frozen=True)
class ExtraNetwork:
    kind: str  # "lora", "hypernet", ...
    args: tuple[str, ...]  # the text between the colons: name, then weights


def extract_extra_networks(text: str) -> tuple[str, list[ExtraNetwork]]:
    """(the prompt without its extra-network tags, the tags in order of appearance)."""
    found: list[ExtraNetwork] = []

    def take(match: re.Match) -> str:
        found.append(ExtraNetwork(match.group(1), tuple(match.group(2).split(":"))))
        return ""

    return EXTRA_NETWORK.sub(take, text), found
