"""Write a grid of demo-model outputs with their captions (for the README).

    python -m studio.demo_model.grid [--model resources/demo-model] [--out resources/demo-grid.png]

Uses the model's default sampler, steps and guidance at native size, one fixed seed per cell.
Captions marked with * use a (color, shape, background) combination held out from training.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path

CAPTIONS = (
    "a large red circle on the left, blue background",  # held out
    "a small yellow square on the top, black background",
    "a large white triangle on the right, purple background",  # held out
    "a small green circle on the bottom, orange background",
    "a large purple square on the center, yellow background",
    "a small black triangle on the left, white background",
    "a large orange circle on the top, green background",
    "a small blue triangle on the right, yellow background",  # held out
    "a red circle",
    "blue background",
    "a large green square",
    "a triangle on the bottom",
    "a yellow shape, purple background",
    "a small orange thing on the right",
    "a nice large white circle on the left, black background, hd",
    "",
)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("resources/demo-model"))
    p.add_argument("--out", type=Path, default=Path("resources/demo-grid.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--cell", type=int, default=160, help="displayed image size in pixels")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from PIL import Image, ImageDraw, ImageFont

    from studio.demo_model import scenes
    from studio.demo_model.check import load_pipeline

    torch.set_num_threads(2)
    pipe, studio = load_pipeline(args.model)
    w, h = studio["native_size"]
    gens = [torch.Generator().manual_seed(args.seed + i) for i in range(len(CAPTIONS))]
    images = pipe(list(CAPTIONS), num_inference_steps=studio["default_steps"],
                  guidance_scale=studio["default_guidance"], width=w, height=h, generator=gens).images

    font = ImageFont.load_default()
    cell, text_h, pad = args.cell, 44, 8
    rows = (len(CAPTIONS) + args.cols - 1) // args.cols
    grid = Image.new("RGB", (args.cols * (cell + pad) + pad, rows * (cell + text_h + pad) + pad + 20), "white")
    d = ImageDraw.Draw(grid)
    d.text((pad, 4), f"{studio['name']}: {studio['default_sampler']}, {studio['default_steps']} steps, "
                     f"guidance {studio['default_guidance']}, {w}x{h} (* = combination held out from training)",
           fill="black", font=font)
    for i, (cap, img) in enumerate(zip(CAPTIONS, images, strict=False)):
        r, c = divmod(i, args.cols)
        x, y = pad + c * (cell + pad), 20 + pad + r * (cell + text_h + pad)
        grid.paste(img.resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        attrs = scenes.parse_caption(cap)
        held = tuple(attrs.get(k) for k in ("color", "shape", "background")) in scenes.HELD_OUT
        label = ("* " if held else "") + (f'"{cap}"' if cap else '"" (empty prompt)')
        for k, line in enumerate(textwrap.wrap(label, width=cell // 6)[:3]):
            d.text((x, y + cell + 2 + k * 13), line, fill="black", font=font)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
