"""Score the demo model: generate random grammar captions and read the images back.

    python -m studio.demo_model.check [--model resources/demo-model] [-n 200]

Every caption is a full grammar sentence; one in four uses a (color, shape, background)
combination held out from training. Images are made through `StableDiffusionPipeline` with
the model's default sampler, steps and guidance (from its studio.json) at native size, then
`scenes.analyze` reads background colour, object colour, shape, position and size back.
Then `--short` partial captions ("a red circle", "blue background"), half of them with
out-of-vocabulary words, are scored on the attributes they name.
Also times 20 steps at native size (warm, median of several runs, CFG and VAE decode
included) and writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

ATTRS = ("background", "color", "shape", "position", "size")


def load_pipeline(model: Path, sampler: str | None = None):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(model), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    studio = json.loads((model / "studio.json").read_text())
    if sampler and sampler != studio["default_sampler"]:
        from studio.engine.schedulers import make_scheduler  # the studio's own sampler table

        pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    return pipe, studio


def eval_scenes(n: int, seed: int):
    from studio.demo_model import scenes

    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            color, shape, background = rng.choice(scenes.HELD_OUT)
            s = scenes.random_scene(rng, jitter=False, color=color, shape=shape, background=background)
        else:
            s = scenes.random_scene(rng, jitter=False)
        out.append(s)
    return out


def run(model: Path, n: int, seed: int, sampler: str | None, steps: int | None,
        guidance: float | None, batch: int, timing_runs: int, n_short: int) -> dict:
    import torch

    from studio.demo_model import scenes

    pipe, studio = load_pipeline(model, sampler)
    sampler = sampler or studio["default_sampler"]
    steps = steps or studio["default_steps"]
    guidance = studio["default_guidance"] if guidance is None else guidance
    w, h = studio["native_size"]

    items = eval_scenes(n, seed)
    hits = {k: 0 for k in ATTRS}
    held = {k: 0 for k in ATTRS}
    n_held = 0
    records = []
    t0 = time.time()
    for start in range(0, n, batch):
        chunk = items[start:start + batch]
        gens = [torch.Generator().manual_seed(seed * 100003 + start + j) for j in range(len(chunk))]
        images = pipe([s.full_caption() for s in chunk], num_inference_steps=steps, guidance_scale=guidance,
                      width=w, height=h, generator=gens).images
        for s, img in zip(chunk, images, strict=True):
            r = scenes.analyze(img)
            ok = scenes.score(s, r)
            is_held = s.triple() in scenes.HELD_OUT
            n_held += is_held
            for k in ATTRS:
                hits[k] += ok[k]
                held[k] += ok[k] and is_held
            records.append({"caption": s.full_caption(), "held_out": is_held,
                            "read": {k: r[k] for k in ATTRS}, "ok": ok})
    gen_time = time.time() - t0
    short = short_phrasings(pipe, n_short, seed, steps, guidance, w, h, batch)

    # Timing: one prompt, native size, CFG + VAE decode, warm.
    prompt = "a large red circle on the left, blue background"
    times = []
    for i in range(timing_runs + 1):
        g = torch.Generator().manual_seed(i)
        t = time.perf_counter()
        pipe(prompt, num_inference_steps=20, guidance_scale=guidance, width=w, height=h, generator=g)
        times.append(time.perf_counter() - t)
    times = times[1:]

    return {
        "model": str(model),
        "n": n,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "threads": torch.get_num_threads(),
        "accuracy": {k: hits[k] / n for k in ATTRS},
        "held_out_n": n_held,
        "held_out_accuracy": {k: held[k] / max(n_held, 1) for k in ATTRS},
        "seconds_20_steps_median": statistics.median(times),
        "seconds_20_steps_all": times,
        "generation_seconds_total": gen_time,
        "short_phrasings": short,
        "records": records,
    }


def short_phrasings(pipe, n: int, seed: int, steps: int, guidance: float, w: int, h: int, batch: int) -> dict:
    """Partial captions ("a red circle", "on the left", "blue background"), half of them with
    out-of-vocabulary words mixed in; each named attribute is scored, the others are free."""
    import torch

    from studio.demo_model import scenes

    rng = random.Random(seed + 1)
    items = []
    for _ in range(n):
        s = scenes.random_scene(rng, jitter=False)
        items.append(scenes.caption(s, rng, p_full=0.0, p_junk=0.5))
    named = {k: 0 for k in ATTRS}
    hits = {k: 0 for k in ATTRS}
    records = []
    for start in range(0, n, batch):
        chunk = items[start:start + batch]
        gens = [torch.Generator().manual_seed(seed * 100003 + 50000 + start + j) for j in range(len(chunk))]
        images = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, width=w, height=h,
                      generator=gens).images
        for text, img in zip(chunk, images, strict=True):
            want = scenes.parse_caption(text)
            ok = scenes.score(want, scenes.analyze(img))
            for k, v in ok.items():
                named[k] += 1
                hits[k] += v
            records.append({"caption": text, "ok": ok})
    return {"n": n, "named": named, "accuracy": {k: hits[k] / named[k] for k in ATTRS if named[k]},
            "records": records}


def edit_check(model: Path, n: int = 24, seed: int = 0) -> dict:
    """Img2img and inpainting through the standard pipelines (4-channel UNet, via from_pipe).

    Inputs are ground-truth drawings. Inpainting masks the object's bounding box (plus a
    margin) and prompts another object colour: scores whether the object takes the new colour
    and how much the pixels outside the mask move. Img2img (strength 0.75) prompts another
    background colour and scores whether the background follows the prompt.
    """
    import numpy as np
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
    from PIL import Image

    from studio.demo_model import scenes

    pipe, studio = load_pipeline(model)
    inpaint = StableDiffusionInpaintPipeline.from_pipe(pipe)
    img2img = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
    for p in (inpaint, img2img):
        p.set_progress_bar_config(disable=True)
    rng = random.Random(seed)
    steps, guidance = studio["default_steps"], studio["default_guidance"]
    inp_ok = i2i_ok = kept = 0
    outside_diff = []
    examples = []
    for i in range(n):
        s = scenes.random_scene(rng, jitter=False)
        src = scenes.draw(s)
        scenes.analyze(src)
        new_color = rng.choice([c for c in scenes.COLORS if c not in (s.color, s.background)])
        # Mask: the object's bounding box plus 6 px.
        arr = np.asarray(src).astype(np.float32)
        obj = np.abs(arr - np.array(scenes.PALETTE[s.background], np.float32)).sum(-1) > 30
        ys, xs = np.nonzero(obj)
        m = np.zeros(obj.shape, np.uint8)
        m[max(ys.min() - 6, 0):ys.max() + 7, max(xs.min() - 6, 0):xs.max() + 7] = 255
        mask = Image.fromarray(m)
        target = scenes.Scene(s.size, new_color, s.shape, s.position, s.background)
        g = torch.Generator().manual_seed(seed + i)
        out = inpaint(target.full_caption(), image=src, mask_image=mask, num_inference_steps=steps,
                      guidance_scale=guidance, generator=g, strength=1.0).images[0]
        ro = scenes.analyze(out)
        inp_ok += ro["color"] == new_color
        kept += ro["background"] == s.background
        o = np.asarray(out).astype(np.float32)
        outside = m == 0
        outside_diff.append(float(np.abs(o - arr)[outside].mean()))
        new_bg = rng.choice([c for c in scenes.COLORS if c not in (s.color, s.background)])
        t2 = scenes.Scene(s.size, s.color, s.shape, s.position, new_bg)
        out2 = img2img(t2.full_caption(), image=src, strength=0.75, num_inference_steps=steps,
                       guidance_scale=guidance, generator=torch.Generator().manual_seed(seed + i)).images[0]
        r2 = scenes.analyze(out2)
        i2i_ok += r2["background"] == new_bg
        if i < 6:
            examples.append((src, mask, out, out2))
    if examples:
        sheet = Image.new("RGB", (64 * 4, 64 * len(examples)), "white")
        for k, ims in enumerate(examples):
            for j, im in enumerate(ims):
                sheet.paste(im.convert("RGB"), (64 * j, 64 * k))
        sheet.save("/tmp/demo-edit-check.png")
    return {
        "n": n,
        "inpaint_new_object_color": inp_ok / n,
        "inpaint_background_kept": kept / n,
        "inpaint_mean_abs_change_outside_mask_0_255": float(np.mean(outside_diff)),
        "img2img_new_background_color": i2i_ok / n,
        "examples_sheet": "/tmp/demo-edit-check.png (columns: source, mask, inpainted, img2img)",
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("resources/demo-model"))
    p.add_argument("-n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default=None, help="A1111 name; default: the model's default")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--short", type=int, default=100, help="partial captions to score as well")
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--timing-runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("resources/demo-check.json"))
    p.add_argument("--edit", action="store_true", help="only run the img2img / inpainting check")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.edit:
        print(json.dumps(edit_check(args.model, n=min(args.n, 24), seed=args.seed), indent=1))
        return
    res = run(args.model, args.n, args.seed, args.sampler, args.steps, args.guidance, args.batch, args.timing_runs,
              args.short)
    print(f"model {res['model']}: {res['n']} captions, sampler {res['sampler']}, {res['steps']} steps, "
          f"guidance {res['guidance']}, {res['threads']} threads")
    print("accuracy      " + "  ".join(f"{k} {v:6.1%}" for k, v in res["accuracy"].items()))
    print(f"held-out ({res['held_out_n']}) " + "  ".join(f"{k} {v:6.1%}" for k, v in res["held_out_accuracy"].items()))
    short = res["short_phrasings"]
    print(f"short ({short['n']})    " + "  ".join(f"{k} {v:6.1%}" for k, v in short["accuracy"].items())
          + "   (of the attributes each caption names)")
    print(f"20 steps at native size: {res['seconds_20_steps_median']:.3f} s (median of {len(res['seconds_20_steps_all'])})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
