"""Train the bundled demo model (issue 3) from scratch, on CPU, from a fixed seed.

    python -m studio.demo_model.train --out resources/demo-model

Five stages, all on procedurally drawn scenes (see `scenes.py`):

1. a small `AutoencoderKL` (3 blocks = 4x downsampling, 64x64 RGB -> 16x16x4 latents,
   no attention so it is purely convolutional and trains on 32x32 crops); its
   `scaling_factor` is set so that the scaled latents have unit standard deviation;
2. the training set (held-out (color, shape, background) combinations excluded) is drawn
   and encoded to latents once;
3. a tiny `CLIPTextModel` is pre-trained alone (cosine classifiers read every attribute the
   caption names back from its sentence states), then frozen, as SD freezes CLIP;
4. a small `UNet2DConditionModel` is trained on the cached latents: v-prediction on the SD 1.x
   scaled_linear DDPM schedule (so every SD sampler works), 10% empty captions (classifier-free
   guidance), random subsets of caption parts and random out-of-vocabulary words, EMA weights;
5. a fine-tune of that UNet (`--finetune-steps`) that teaches it to trust the image over the
   text at low noise: below t=400, half the captions belong to another scene while the target
   stays. Img2img at strength 0.2 with a different prompt then changes 4/255 on average
   instead of 70/255 (repainting the whole picture); txt2img accuracy held.

Position words were the hard part. With the text encoder trained jointly with the UNet,
position stayed at chance (16%) while colours and shapes were learned, whether the UNet
predicted epsilon or v: the encoder kept only what the UNet used first (background colour)
and let the position words collapse to nearly identical states. Pre-training it alone fixed
that. v-prediction stays because the layout is decided in the noisiest steps, where an epsilon
loss hardly sees x0 errors; the v loss weighs them fully there.

The result is a standard SD 1.x diffusers folder (unet, vae, text_encoder, tokenizer,
scheduler, model_index.json; safetensors), plus `latent_preview.json` (least-squares linear
latent -> RGB factors) and `studio.json` (app defaults). Uses 2 torch threads. On the shared
2-core CPU: autoencoder 3000 steps ~10 min, decoder fine-tune 800 steps ~4 min, text encoder
500 steps ~1 min, UNet 6000 steps x 32 ~57 min, fine-tune 1500 steps ~14 min (about 90 min
in all). Intermediate results are cached in --work, so stages can be re-run (see --stage).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import time
from pathlib import Path

# The machine is shared: let idle OpenMP threads sleep instead of spinning, otherwise two
# processes with 2 threads each on 2 cores slow each other down by orders of magnitude.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from studio.demo_model import scenes  # noqa: E402

MAX_LENGTH = 32
SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    clip_sample=False,
    set_alpha_to_one=False,
    timestep_spacing="leading",
)
DEFAULTS = {"default_sampler": "DPM++ 2M", "default_steps": 20, "default_guidance": 5.0}


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# ----------------------------------------------------------------------------- models

def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=scenes.NATIVE,
        mid_block_add_attention=False,
    )


def make_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=128,
    )
    return CLIPTextModel(config)


def make_unet(levels: int = 3):
    """levels=4 goes down to 2x2 latents: there every cell sees the zero padding differently,
    which gives the network a sense of absolute position (left/right/top/bottom)."""
    from diffusers import UNet2DConditionModel

    extra = levels - 3
    return UNet2DConditionModel(
        sample_size=scenes.NATIVE // 4,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D") + ("DownBlock2D",) * extra,
        up_block_types=("UpBlock2D",) * extra + ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128, 128) + (128,) * extra,
        layers_per_block=1,
        cross_attention_dim=128,
        attention_head_dim=4,  # (diffusers' legacy name: the number of heads)
        norm_num_groups=32,
    )


def make_scheduler(kind: str, prediction_type: str):
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler

    schedule = dict(SCHEDULE, prediction_type=prediction_type)
    if kind == "ddpm":
        return DDPMScheduler(**{k: v for k, v in schedule.items() if k != "set_alpha_to_one"})
    sampler_schedule = {k: v for k, v in schedule.items() if k not in ("clip_sample", "set_alpha_to_one")}
    if kind == "euler_a":
        return EulerAncestralDiscreteScheduler(**sampler_schedule)
    return DPMSolverMultistepScheduler(**sampler_schedule, algorithm_type="dpmsolver++", solver_order=2)


# ----------------------------------------------------------------------------- data

def to_tensor(images) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def vae_batch(rng: random.Random, batch: int, crop: int) -> torch.Tensor:
    """Training scenes for the autoencoder; 20% use arbitrary (off-palette) colours."""
    images = []
    for _ in range(batch):
        scene = scenes.random_scene(rng, allow_held_out=False)
        img = scenes.draw(scene)
        if rng.random() < 0.2:
            arr = np.asarray(img).astype(np.float32)
            bg = np.array(scenes.PALETTE[scene.background], np.float32)
            fg = np.array(scenes.PALETTE[scene.color], np.float32)
            # Per-pixel blend weight of the object, re-coloured with random colours.
            w = ((arr - bg) @ (fg - bg)) / max(float((fg - bg) @ (fg - bg)), 1.0)
            nb = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
            nf = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
            arr = nb + np.clip(w, 0, 1)[..., None] * (nf - nb)
            from PIL import Image
            img = Image.fromarray(arr.round().clip(0, 255).astype(np.uint8))
        if crop < scenes.NATIVE:
            x, y = rng.randrange(0, scenes.NATIVE - crop + 1, 4), rng.randrange(0, scenes.NATIVE - crop + 1, 4)
            img = img.crop((x, y, x + crop, y + crop))
        images.append(img)
    return to_tensor(images)


def train_vae(args, work: Path):
    path = work / "vae"
    if path.exists() and not args.retrain_vae:
        from diffusers import AutoencoderKL
        log("reusing autoencoder from", path)
        return AutoencoderKL.from_pretrained(path)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    vae = make_vae()
    log(f"autoencoder: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M parameters")
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, args.vae_steps) / args.vae_steps)))
    t0 = time.time()
    for step in range(args.vae_steps):
        x = vae_batch(rng, args.vae_batch, args.vae_crop)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        l1 = (rec - x).abs().mean()
        mse = F.mse_loss(rec, x)
        kl = post.kl().mean()
        loss = l1 + mse + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == args.vae_steps - 1:
            log(f"vae step {step} l1 {l1.item():.4f} mse {mse.item():.5f} kl {kl.item():.1f} "
                f"({(time.time() - t0) / (step + 1):.3f} s/step)")
    vae.eval()
    vae.save_pretrained(path)
    return vae


def finetune_decoder(vae, args, work: Path):
    """Sharpen the decoder with the encoder (hence the latent space) frozen: full 64x64
    scenes, latents sometimes jittered a little so the decoder snaps imperfect (generated)
    latents to flat colours."""
    from diffusers import AutoencoderKL

    path = work / "vae-decoder"
    if path.exists() and not args.retrain_vae:
        log("reusing fine-tuned decoder from", path)
        return AutoencoderKL.from_pretrained(path)
    torch.manual_seed(args.seed + 3)
    rng = random.Random(args.seed + 3)
    vae = copy.deepcopy(vae)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in vae.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.dec_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, args.dec_steps) / args.dec_steps)))
    std = None
    t0 = time.time()
    for step in range(args.dec_steps):
        x = vae_batch(rng, args.dec_batch, scenes.NATIVE)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
            if std is None:
                std = float(z.std())
            jitter = (torch.rand(len(z), 1, 1, 1) < 0.5) * 0.05 * std
            z = z + jitter * torch.randn_like(z)
        rec = vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        loss = l1 + F.mse_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == args.dec_steps - 1:
            log(f"decoder step {step} l1 {l1.item():.4f} ({(time.time() - t0) / (step + 1):.3f} s/step)")
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(True)
    vae.save_pretrained(path)
    return vae


@torch.no_grad()
def encode_dataset(vae, args, work: Path):
    path = work / f"latents-{args.dataset}.pt"
    if path.exists() and not args.retrain_vae:
        log("reusing latents from", path)
        data = torch.load(path, weights_only=False)
        return data["latents"], data["scenes"], data["scaling"]
    rng = random.Random(args.seed + 1)
    all_scenes = [scenes.random_scene(rng, allow_held_out=False) for _ in range(args.dataset)]
    latents = []
    for i in range(0, len(all_scenes), 256):
        x = to_tensor([scenes.draw(s) for s in all_scenes[i:i + 256]])
        latents.append(vae.encode(x).latent_dist.mode())
    latents = torch.cat(latents)
    scaling = float(1.0 / latents.std())
    log(f"encoded {len(all_scenes)} scenes: latent mean {latents.mean():.3f} std {latents.std():.3f} "
        f"-> scaling_factor {scaling:.4f}; channel means {latents.mean((0, 2, 3)).tolist()}")
    torch.save({"latents": latents, "scenes": all_scenes, "scaling": scaling}, path)
    return latents, all_scenes, scaling


# ----------------------------------------------------------------------------- unet

def training_caption(scene, rng: random.Random, p_empty: float) -> str:
    if rng.random() < p_empty:
        return ""
    return scenes.caption(scene, rng)


ATTRIBUTES = {"size": scenes.SIZES, "color": scenes.COLORS, "shape": scenes.SHAPES,
              "position": scenes.POSITIONS, "background": scenes.COLORS}


def pretrain_text_encoder(args, tokenizer):
    """Train the text encoder alone, then freeze it (as SD freezes its CLIP).

    Trained jointly with the UNet from scratch, the encoder learned only what the UNet used
    first: background colour. The position words faded to near-identical states (a
    thirtieth of the background words' separation), so no UNet could have followed them. Here every
    attribute the caption names is read back from the sentence states (the end-of-text and
    padding tokens, which see the whole caption) by cosine classifiers, so each attribute
    gets its own well-separated directions before the UNet ever sees them."""
    torch.manual_seed(args.seed + 5)
    rng = random.Random(args.seed + 5)
    text_encoder = make_text_encoder(tokenizer)
    width = text_encoder.config.hidden_size
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, len(v) + 1, bias=False) for k, v in ATTRIBUTES.items()})
    params = list(text_encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.te_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, args.te_steps) / args.te_steps)))
    t0 = time.time()
    for step in range(args.te_steps):
        caps = [training_caption(scenes.random_scene(rng), rng, args.p_empty) for _ in range(args.te_batch)]
        enc = tokenizer(caps, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
        states = text_encoder(enc.input_ids)[0]
        # Sentence states: the end-of-text token (the last one the mask counts) and the padding
        # after it; under CLIP's causal attention only these see the whole caption.
        ends = enc.attention_mask.sum(1, keepdim=True) - 1
        after = torch.arange(MAX_LENGTH)[None] >= ends
        pooled = (states * after[..., None]).sum(1) / after.sum(1, keepdim=True)
        pooled = F.normalize(pooled, dim=-1)
        loss, correct = 0.0, {}
        for name, values in ATTRIBUTES.items():
            labels = torch.tensor([
                values.index(a[name]) if name in a else len(values)
                for a in (scenes.parse_caption(c) for c in caps)])
            logits = args.te_scale * pooled @ F.normalize(heads[name].weight, dim=-1).T
            loss = loss + F.cross_entropy(logits, labels)
            correct[name] = (logits.argmax(-1) == labels).float().mean().item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == args.te_steps - 1:
            log(f"text encoder step {step} loss {loss.item():.4f} accuracy "
                + " ".join(f"{k} {v:.3f}" for k, v in correct.items())
                + f" ({(time.time() - t0) / (step + 1):.3f} s/step)")
    text_encoder.eval().requires_grad_(False)
    return text_encoder


def ema_update(ema, model, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
            pe.lerp_(pm, 1.0 - decay)


def train_unet(args, latents, all_scenes, scaling, tokenizer, text_encoder, vae, out: Path, *,
               unet=None, steps: int | None = None, lr: float | None = None, phase: int = 1,
               ema: float | None = None, warm: int = 200):
    """Phase 1 trains from scratch; phase 2 (fine-tuning) continues from given (EMA) weights
    with a fresh optimizer and a second, lower cosine learning-rate cycle. The text encoder
    stays frozen."""
    steps = steps or args.steps
    lr = lr or args.lr
    ema = ema or args.ema
    torch.manual_seed(args.seed + 2 * phase)
    rng = random.Random(args.seed + 2 * phase)
    unet = unet if unet is not None else make_unet(args.unet_levels)
    unet.train()
    log(f"phase {phase}: unet: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M parameters, text encoder: "
        f"{sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f}M, {steps} steps at lr {lr}")
    ema_unet = copy.deepcopy(unet).eval()
    noise_sched = make_scheduler("ddpm", args.prediction)
    alphas_cumprod = noise_sched.alphas_cumprod
    snr = alphas_cumprod / (1 - alphas_cumprod)
    if args.prediction == "v_prediction":
        # The v loss is the x0 loss times (SNR + 1): at high noise it weighs x0 errors fully,
        # which is where the layout (the position words) is decided. Capping SNR + 1 at
        # min_snr + 1 only down-weights the easy, nearly clean steps. (Min-SNR's usual v form,
        # min(SNR, 5) / (SNR + 1), would instead silence the high-noise steps again.)
        weights = torch.clamp(snr + 1, max=args.min_snr + 1) / (snr + 1)
    else:
        weights = torch.clamp(snr, max=args.min_snr) / snr  # min-SNR weighting for epsilon targets

    params = list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    z_all = latents * scaling
    t0 = time.time()
    running = 0.0
    for step in range(steps):
        idx = torch.randint(0, len(z_all), (args.batch,))
        z = z_all[idx]
        caps = [training_caption(all_scenes[i], rng, args.p_empty) for i in idx.tolist()]
        noise = torch.randn_like(z)
        t = torch.randint(0, 1000, (args.batch,))
        w = weights[t]
        if phase == 2:
            # Trust the image over the text where the image already shows the scene: at low
            # noise, pair some latents with another scene's caption (the target stays this
            # scene). Without it, the UNet took colours from the text at every noise level, so
            # img2img at strength 0.2 with a different prompt repainted the whole picture.
            for j in range(args.batch):
                if t[j] < args.trust_image_below and rng.random() < args.trust_image_frac:
                    caps[j] = training_caption(all_scenes[rng.randrange(len(all_scenes))], rng, args.p_empty)
        ids = tokenizer(caps, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                        return_tensors="pt").input_ids
        noisy = noise_sched.add_noise(z, noise, t)
        with torch.no_grad():
            cond = text_encoder(ids)[0]
        pred = unet(noisy, t, cond).sample
        target = noise_sched.get_velocity(z, noise, t) if args.prediction == "v_prediction" else noise
        loss = (((pred - target) ** 2).mean((1, 2, 3)) * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(ema, (1 + step) / (10 + step)) if phase == 1 else ema
        ema_update(ema_unet, unet, decay)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"phase {phase} unet step {step} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"({el / (step + 1):.3f} s/step, eta {el / (step + 1) * (steps - step - 1) / 60:.1f} min)")
        if args.save_every and step and step % args.save_every == 0:
            save_pipeline(out, ema_unet, text_encoder, tokenizer, vae, scaling, args.prediction)
            log("saved checkpoint", out)
    save_pipeline(out, ema_unet, text_encoder, tokenizer, vae, scaling, args.prediction)
    log(f"phase {phase} unet training took {(time.time() - t0) / 60:.1f} min")
    return ema_unet


# ----------------------------------------------------------------------------- export

def save_pipeline(out: Path, unet, text_encoder, tokenizer, vae, scaling: float, prediction_type: str) -> None:
    from diffusers import StableDiffusionPipeline

    vae.register_to_config(scaling_factor=scaling)
    scheduler = make_scheduler("euler_a" if DEFAULTS["default_sampler"] == "Euler a" else "dpm", prediction_type)
    # Written out so that samplers built from this config (the studio's DDIM, say) train-match:
    # DDIM's own defaults would clip x0 to [-1, 1], which these unit-variance latents exceed.
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    from studio.engine.word_tokenizer import save_word_tokenizer
    save_word_tokenizer(scenes.VOCAB, out / "tokenizer", max_length=MAX_LENGTH)
    fit_latent_preview(vae, scaling, out)
    with open(out / "studio.json", "w") as f:
        json.dump({"name": "Demo shapes", "native_size": [scenes.NATIVE, scenes.NATIVE], **DEFAULTS}, f, indent=2)
        f.write("\n")


@torch.no_grad()
def fit_latent_preview(vae, scaling: float, out: Path, n: int = 512, seed: int = 7) -> dict:
    """Least-squares linear map from scaled latents to the 4x-downsampled RGB in [-1, 1]."""
    rng = random.Random(seed)
    x = to_tensor([scenes.draw(scenes.random_scene(rng)) for _ in range(n)])
    z = vae.encode(x).latent_dist.mode() * scaling
    rgb = F.avg_pool2d(x, 4)
    zf = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    yf = rgb.permute(0, 2, 3, 1).reshape(-1, 3).double()
    a = torch.cat([zf, torch.ones(len(zf), 1, dtype=zf.dtype)], 1)
    sol = torch.linalg.lstsq(a, yf).solution
    resid = (a @ sol - yf).abs().mean().item()
    data = {"factors": [[round(v, 6) for v in row] for row in sol[:-1].tolist()],
            "bias": [round(v, 6) for v in sol[-1].tolist()]}
    with open(out / "latent_preview.json", "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    log(f"latent preview fitted (mean abs error {resid:.3f} in [-1, 1] units)")
    return data


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("resources/demo-model"))
    p.add_argument("--work", type=Path, default=Path("/tmp/demo-model-work"),
                   help="intermediate files (autoencoder, cached latents)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--vae-crop", type=int, default=32)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-kl", type=float, default=1e-6)
    p.add_argument("--dec-steps", type=int, default=800)
    p.add_argument("--dec-batch", type=int, default=16)
    p.add_argument("--dec-lr", type=float, default=5e-4)
    p.add_argument("--retrain-vae", action="store_true", help="ignore a cached autoencoder in --work")
    p.add_argument("--dataset", type=int, default=16384, help="number of cached training scenes")
    p.add_argument("--te-steps", type=int, default=500, help="text encoder pre-training steps")
    p.add_argument("--te-batch", type=int, default=128)
    p.add_argument("--te-lr", type=float, default=1e-3)
    p.add_argument("--te-scale", type=float, default=10.0, help="cosine classifier temperature")
    p.add_argument("--unet-levels", type=int, default=3, choices=(3, 4))
    p.add_argument("--prediction", choices=("v_prediction", "epsilon"), default="v_prediction",
                   help="what the UNet predicts (the shipped model: v_prediction)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--finetune-steps", type=int, default=1500,
                   help="phase 2: continue from the EMA weights with a second, lower lr cycle")
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--trust-image-below", type=int, default=400,
                   help="phase 2: timesteps below this sometimes get another scene's caption")
    p.add_argument("--trust-image-frac", type=float, default=0.5)
    p.add_argument("--finetune-ema", type=float, default=0.998)
    p.add_argument("--min-snr", type=float, default=5.0)
    p.add_argument("--p-empty", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument("--stage", choices=("all", "vae", "decoder", "export", "finetune"), default="all",
                   help="vae/decoder: stop after that stage; export: re-save --out with the "
                        "fine-tuned decoder and the unet/text encoder already in --out; finetune: "
                        "run only phase 2, starting from the unet/text encoder in --out")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    from studio.engine.word_tokenizer import build_word_tokenizer

    t0 = time.time()
    vae = train_vae(args, args.work)
    if args.stage == "vae":
        return
    latents, all_scenes, scaling = encode_dataset(vae, args, args.work)
    vae = finetune_decoder(vae, args, args.work)
    if args.stage == "decoder":
        return
    tokenizer = build_word_tokenizer(scenes.VOCAB, max_length=MAX_LENGTH)
    if args.stage in ("export", "finetune"):
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained(args.out / "unet")
        text_encoder = CLIPTextModel.from_pretrained(args.out / "text_encoder").eval().requires_grad_(False)
        if args.stage == "export":
            save_pipeline(args.out, unet, text_encoder, tokenizer, vae, scaling, args.prediction)
            return
    else:
        text_encoder = pretrain_text_encoder(args, tokenizer)
        unet = train_unet(args, latents, all_scenes, scaling, tokenizer, text_encoder, vae, args.out)
    if args.finetune_steps:
        train_unet(args, latents, all_scenes, scaling, tokenizer, text_encoder, vae, args.out, unet=unet,
                   steps=args.finetune_steps, lr=args.finetune_lr, phase=2, ema=args.finetune_ema, warm=50)
    log(f"done in {(time.time() - t0) / 60:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
