"""Seconds per image for each generation mode at one size: stock diffusers, zturbo plain and --fast; and what
LoRAs cost (fused vs not).

Random weights of the real architecture (zturbo.benchmark.randmodel: they time like the checkpoint), one
process. Modes: text-to-image, image-to-image (strength 0.6: 5 of 8 passes), inpainting (strength 1.0: 8
passes), and ControlNet (a random Union-2.1-layout ControlNet of the real size), with and without
inpainting. For each mode: stock (diffusers' own pipeline class for the mode, prompt string in, PIL image
out), plain (zturbo without --fast) and --fast (the lossless tier: compiled, same transformer re-made):
first-call seconds and the median of --repeats timed images. LoRA: random rank-R LoRA files over every
attention and feed-forward projection of the 30 main blocks, 1 and 3 of them, fused into the weights (what
`--lora` does) and unfused (peft adapters left active: what a per-request LoRA costs), with the load+fuse
seconds. On the device machine:
    PYTHONPATH=src python3 bench/modes.py --json $OUT/modes.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

PROMPT = "A sleek black helmeted robot against a solid red background"


def lora_file(path: str, transformer, rank: int, seed: int) -> None:
    """A diffusers/peft-layout LoRA over every attention and FFN projection of the main blocks."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, mod in transformer.named_modules():
        if name.startswith("layers.") and isinstance(mod, torch.nn.Linear) and (".attention." in name or ".feed_forward." in name):
            sd[f"transformer.{name}.lora_A.weight"] = (torch.randn(rank, mod.in_features, generator=g) * 0.01).to(torch.bfloat16)
            sd[f"transformer.{name}.lora_B.weight"] = (torch.randn(mod.out_features, rank, generator=g) * 0.01).to(torch.bfloat16)
    save_file(sd, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--parts", nargs="+", default=["stock", "plain", "fast", "control", "lora"],
                    help="stock/plain/fast: those tiers for the three base modes; control: the ControlNet modes for "
                         "each of those tiers asked; lora: the LoRA cost")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run on the tiny architecture")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))

    from zturbo.benchmark.randmodel import build_pipeline, transformer_from_state
    from zturbo.engine import Engine
    from zturbo.lora import apply_loras
    from zturbo.machine import sync
    from zturbo.models import LoadedModel, ModelInfo
    from zturbo.params import GenerationParams
    from zturbo.speed.fast import apply_fast

    dev = torch.device("cpu" if args.tiny else "cuda")
    pipe = build_pipeline(dev, tiny=args.tiny)
    cfg, state = dict(pipe.transformer.config), {k: v.to("cpu") for k, v in pipe.transformer.state_dict().items()}
    pipe.transformer = None
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    tmp = tempfile.mkdtemp(prefix="zturbo-modes-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
    rng = np.random.default_rng(0)
    photo, mask = os.path.join(tmp, "photo.png"), os.path.join(tmp, "mask.png")
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(photo)
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2:] = 255
    Image.fromarray(m).save(mask)
    modes = {"text-to-image": {}, "image-to-image": {"image": photo, "strength": 0.6},
             "inpainting": {"image": photo, "mask": mask}}
    res = {"card": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "command": " ".join(["python3"] + sys.argv), "size": args.size, "repeats": args.repeats,
           "model": "tiny architecture (smoke)" if args.tiny else "Z-Image-Turbo architecture, random weights",
           "modes": {}, "lora": {}}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)

    def components(loras=()):
        from diffusers import FlowMatchEulerDiscreteScheduler

        tr = transformer_from_state({k: v.clone() for k, v in state.items()} if loras else state, cfg, dev)
        return dict(scheduler=FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config), vae=pipe.vae,
                    text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, transformer=tr)

    cn_holder = {}

    def random_controlnet():
        """A ControlNet of the real Union-2.1 layout with random weights (they time like the file), made once;
        its zero-initialised projections made random, as the tiny one's."""
        if "cn" not in cn_holder:
            from diffusers import ZImageControlNetModel

            from zturbo.controlnet import CONFIGS

            variant = "tiny" if args.tiny else "union-2.1"
            cn_cfg = {k: v for k, v in json.loads((CONFIGS / variant / "config.json").read_text()).items()
                      if not k.startswith("_")}
            torch.manual_seed(0)
            with torch.device(dev):
                cn = ZImageControlNetModel(**cn_cfg).to(torch.bfloat16).eval()
            for name, prm in cn.named_parameters():
                if "before_proj" in name or "after_proj" in name or "control_all_x_embedder" in name:
                    torch.nn.init.normal_(prm, std=0.02)
            cn_holder.update(cn=cn, state={k: v.to("cpu") for k, v in cn.state_dict().items()}, cfg=cn_cfg,
                             variant=variant)
            res["controlnet_gb"] = round(sum(p.numel() * p.element_size() for p in cn.parameters()) / 1e9, 2)
        # a fresh copy each time: --fast rewrites the one it is given
        from diffusers import ZImageControlNetModel

        with torch.device(dev):
            cn = ZImageControlNetModel(**cn_holder["cfg"]).to(torch.bfloat16).eval()
        cn.load_state_dict(cn_holder["state"])
        return cn

    def engine(fast=False, loras=(), fuse=True, controlnet=False):
        from diffusers import ZImagePipeline

        torch._dynamo.reset()
        p = ZImagePipeline(**components(loras))
        p.set_progress_bar_config(disable=True)
        sync(dev)
        t0 = time.perf_counter()
        records = apply_loras(p, tuple((f, 1.0) for f in loras), fuse=fuse) if loras else []
        sync(dev)
        load_s = time.perf_counter() - t0
        eng = Engine(LoadedModel(p, ModelInfo(model="random", source="bench", quant="bf16", label="random")))
        eng.loras = records
        cn = random_controlnet() if controlnet else None
        if cn is not None:
            eng.controlnet, eng.controlnet_record = cn, {"name": f"random {cn_holder['variant']}", "variant": "union-2.x",
                                                         "sha256": "random", "control_in_dim": cn.config.control_in_dim}
        if fast:
            eng.speed = apply_fast(p, "lossless", controlnet=cn)
            eng.unpadded_prompts = True
        return eng, load_s

    def repeat(call) -> tuple[dict, object]:
        sync(dev)
        t0 = time.perf_counter()
        r = call()
        sync(dev)
        first = time.perf_counter() - t0
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = call()
            sync(dev)
            runs.append(time.perf_counter() - t0)
        return {"s": round(statistics.median(runs), 3), "runs_s": [round(x, 3) for x in runs],
                "first_call_s": round(first, 2)}, r

    def timed(eng, extra) -> dict:
        params = GenerationParams(prompt=PROMPT, seed=42, width=w, height=h, rng="cuda" if dev.type == "cuda" else "cpu", **extra)
        out, r = repeat(lambda: eng.generate(params))
        return {**out, "passes": r.passes, "s_per_pass_incl_decode": round(out["s"] / r.passes, 4),
                "stages_s": r.recipes[0]["timings"]}

    def stock(mode, extra) -> dict:
        """diffusers' own pipeline class for the mode, called as its docs show: prompt string in, PIL out."""
        import diffusers

        cls = {"text-to-image": "ZImagePipeline", "image-to-image": "ZImageImg2ImgPipeline",
               "inpainting": "ZImageInpaintPipeline", "controlnet": "ZImageControlNetPipeline",
               "controlnet-inpainting": "ZImageControlNetInpaintPipeline"}[mode]
        torch._dynamo.reset()
        c = components()
        if mode.startswith("controlnet"):
            c["controlnet"] = random_controlnet()
        p = getattr(diffusers, cls)(**c)
        p.set_progress_bar_config(disable=True)
        kw = {"prompt": PROMPT, "height": h, "width": w, "num_inference_steps": 8, "guidance_scale": 0.0}
        load = lambda path: Image.open(path).convert("RGB")  # noqa: E731
        if "image" in extra:
            kw["image"] = load(extra["image"])
            if "control_image" not in extra:  # ControlNet inpainting takes no strength
                kw["strength"] = extra.get("strength", 1.0)
        if "mask" in extra:
            kw["mask_image"] = Image.open(extra["mask"]).convert("L")
        if "control_image" in extra:
            kw["control_image"] = load(extra["control_image"])
            kw["controlnet_conditioning_scale"] = 0.75
        gen = lambda: torch.Generator(dev).manual_seed(42)  # noqa: E731
        out, _ = repeat(lambda: p(generator=gen(), **kw).images[0])
        return out

    control_modes = {"controlnet": {"control_image": photo},
                     "controlnet-inpainting": {"control_image": photo, "image": photo, "mask": mask}}
    for tier in [p for p in args.parts if p in ("stock", "plain", "fast")]:
        eng = None if tier == "stock" else engine(fast=tier == "fast")[0]
        for mode, extra in modes.items():
            try:
                out = stock(mode, extra) if eng is None else timed(eng, extra)
            except Exception as exc:  # one failing mode must not lose the others
                out = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            res["modes"].setdefault(mode, {})[tier] = out
            print(tier, mode, out, flush=True)
            save()
        del eng
        if "control" in args.parts:
            eng = None if tier == "stock" else engine(fast=tier == "fast", controlnet=True)[0]
            for mode, extra in control_modes.items():
                try:
                    out = stock(mode, extra) if eng is None else timed(eng, extra)
                except Exception as exc:
                    out = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                res["modes"].setdefault(mode, {})[tier] = out
                print(tier, mode, out, flush=True)
                save()
            del eng
    t2i = res["modes"].get("text-to-image", {})
    for mode, tiers in res["modes"].items():
        for tier, v in tiers.items():
            if "s" in v and "s" in t2i.get(tier, {}):
                v["x_text_to_image"] = round(v["s"] / t2i[tier]["s"], 2)
            if tier != "stock" and "s" in v and "s" in tiers.get("stock", {}):
                v["x_stock"] = round(v["s"] / tiers["stock"]["s"], 2)
    if "lora" in args.parts:
        files = [os.path.join(tmp, f"lora{i}.safetensors") for i in range(3)]
        from diffusers import ZImageTransformer2DModel

        with torch.device("meta"):
            shapes = ZImageTransformer2DModel.from_config(cfg)
        for i, f in enumerate(files):
            lora_file(f, shapes, args.rank, i)
        res["lora"]["rank"] = args.rank
        res["lora"]["file_mb"] = round(os.path.getsize(files[0]) / 1e6, 1)
        for n in (0, 1, 3):
            for fuse in ((True,) if n == 0 else (True, False)):
                key = "base" if n == 0 else f"{n}-{'fused' if fuse else 'unfused'}"
                try:
                    eng, load_s = engine(loras=files[:n], fuse=fuse)
                    out = timed(eng, {})
                    out["load_and_fuse_s" if fuse else "load_s"] = round(load_s, 2)
                    del eng
                except Exception as exc:
                    out = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                res["lora"][key] = out
                print("lora", key, out, flush=True)
                save()
        base = res["lora"].get("base", {}).get("s")
        for key, v in res["lora"].items():
            if isinstance(v, dict) and "s" in v and base:
                v["x_base"] = round(v["s"] / base, 2)
    save()
    print(json.dumps({m: {t: v.get("s") for t, v in tiers.items()} for m, tiers in res["modes"].items()}))
    print(json.dumps({k: v.get("s") for k, v in res["lora"].items() if isinstance(v, dict)}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
