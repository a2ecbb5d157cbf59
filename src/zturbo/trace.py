"""`zturbo trace`: one generation with hooks at the article's eight stages (Part 3), reporting what
actually happened: every number below is read from the running pipeline or the loaded configs.

The generation is the engine's own (`Engine.generate`, so stock diffusers underneath); `Probe`
only listens: module hooks on the text encoder, the DiT, its first block and the VAE decoder, plus
pass-through wrappers around the pipeline's `prepare_latents`, the scheduler's `set_timesteps` and
the DiT's `patchify_and_embed` (plain methods, so no module hook can see their values). Everything
is removed on exit. The x0 previews are decoded after the run, so they do not count in pass times.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from typing import Any

import torch

from . import defaults
from .engine import Engine, to_pil
from .errors import GenerationFailed
from .machine import sync
from .params import GenerationParams


def count_parameters(module: torch.nn.Module) -> int:
    """Weights in a module; a GGUF parameter counts its logical (dequantized) shape, not its bytes."""
    import math

    return sum(math.prod(p.quant_shape) if hasattr(p, "quant_shape") else p.numel() for p in module.parameters())


def _wrap(obj: Any, name: str, before=None, after=None):
    """Install a pass-through wrapper as an instance attribute; returns the undo function."""
    original = getattr(obj, name)

    @functools.wraps(original)  # keeps the signature: diffusers inspects set_timesteps' parameters
    def wrapper(*args, **kwargs):
        if before is not None:
            before(args, kwargs)
        out = original(*args, **kwargs)
        if after is not None:
            after(args, kwargs, out)
        return out

    setattr(obj, name, wrapper)
    return lambda: obj.__dict__.pop(name, None)


class Probe:
    """Hooks on a ZImagePipeline that record one generation. Use as a context manager."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.device = pipe._execution_device
        self.rec: dict[str, Any] = {"pass_seconds": [], "timestep_inputs": [], "evaluations": 0}
        self._undo: list = []

    # -- what the hooks store ----------------------------------------------------------------
    def _text_encoder_out(self, module, args, kwargs, output):
        if getattr(output, "hidden_states", None) is not None and "hidden_states" not in self.rec:
            mask = kwargs.get("attention_mask")
            states = [h[0] if mask is None else h[0][mask[0].bool()] for h in output.hidden_states]
            self.rec["hidden_states"] = [s.detach() for s in states]
            self.rec["input_ids"] = kwargs.get("input_ids")

    def _prepare_latents(self, args, kwargs, out):
        gen = kwargs.get("generator", args[6] if len(args) > 6 else None)
        self.rec["noise"] = out.detach().float().cpu().clone()
        self.rec["noise_dtype"] = str(out.dtype).removeprefix("torch.")
        self.rec["generator_device"] = str(gen.device) if isinstance(gen, torch.Generator) else None

    def _set_timesteps(self, args, kwargs):
        self.rec["mu"] = kwargs.get("mu")
        sig = kwargs.get("sigmas")
        self.rec["sigmas_in"] = None if sig is None else [float(s) for s in sig]

    def _dit_pre(self, module, args, kwargs):
        sync(self.device)
        self._t0 = time.perf_counter()
        x, t, caps = (list(args) + [None, None, None])[:3]
        x = x if x is not None else kwargs.get("x")
        t = t if t is not None else kwargs.get("t")
        caps = caps if caps is not None else kwargs.get("cap_feats")
        self.rec["evaluations"] += len(x)
        self.rec["timestep_inputs"].append(float(t.flatten()[0]))
        if "cap_feats" not in self.rec:
            self.rec["cap_feats"] = caps[0].detach()
            self.rec["dit_input_shape"] = tuple(x[0].shape)
            self.rec["dit_dtype"] = str(x[0].dtype).removeprefix("torch.")

    def _dit_post(self, module, args, output):
        sync(self.device)
        self.rec["pass_seconds"].append(time.perf_counter() - self._t0)

    def _patchify(self, args, kwargs, out):
        if "patchify" in self.rec:
            return
        names = ("all_image", "all_cap_feats", "patch_size", "f_patch_size")
        call = dict(zip(names, args)) | kwargs
        _img, cap, size, img_pos, cap_pos, img_pad, cap_pad = out[:7]
        self.rec["patchify"] = dict(
            patch_size=int(call["patch_size"]), f_patch_size=int(call["f_patch_size"]),
            latent_size=tuple(int(s) for s in size[0]),
            img_pos=img_pos[0].cpu(), img_pad=img_pad[0].cpu(),
            cap_pos=cap_pos[0][: len(cap[0])].cpu(), cap_pad=cap_pad[0].cpu(),
        )

    def _unified(self, args, kwargs, out):
        """Which part opens the single stream: compare its first rows with the image and caption parts."""
        if "order" in self.rec:
            return
        names = ("x", "x_freqs", "x_seqlens", "x_noise_mask", "cap", "cap_freqs", "cap_seqlens")
        call = dict(zip(names, args)) | kwargs
        x, cap, unified = call["x"][0], call["cap"][0], out[0][0]
        nx, nc = call["x_seqlens"][0], call["cap_seqlens"][0]
        if torch.equal(unified[:nx], x[:nx]) and torch.equal(unified[nx:nx + nc], cap[:nc]):
            self.rec["order"] = "image tokens, then caption tokens"
        elif torch.equal(unified[:nc], cap[:nc]) and torch.equal(unified[nc:nc + nx], x[:nx]):
            self.rec["order"] = "caption tokens, then image tokens"
        else:
            self.rec["order"] = "neither part opens the sequence unchanged"

    def _block0(self, module, args, kwargs):
        if "unified_shape" not in self.rec:
            hidden = args[0] if args else kwargs.get("x")
            self.rec["unified_shape"] = tuple(hidden.shape)

    def _decoder_pre(self, module, args):
        if "decoder_in" not in self.rec:
            self.rec["decoder_in"] = args[0].detach().float().cpu()

    def _decoder_post(self, module, args, output):
        if "decoder_out_shape" not in self.rec:
            self.rec["decoder_out_shape"] = tuple(output.shape)

    # -- install / remove --------------------------------------------------------------------
    def __enter__(self) -> Probe:
        p, tr = self.pipe, self.pipe.transformer
        hooks = [
            p.text_encoder.register_forward_hook(self._text_encoder_out, with_kwargs=True),
            tr.register_forward_pre_hook(self._dit_pre, with_kwargs=True),
            tr.register_forward_hook(self._dit_post),
            tr.layers[0].register_forward_pre_hook(self._block0, with_kwargs=True),
            p.vae.decoder.register_forward_pre_hook(self._decoder_pre),
            p.vae.decoder.register_forward_hook(self._decoder_post),
        ]
        self._undo = [h.remove for h in hooks] + [
            _wrap(p, "prepare_latents", after=self._prepare_latents),
            _wrap(p.scheduler, "set_timesteps", before=self._set_timesteps),
            _wrap(tr, "patchify_and_embed", after=self._patchify),
        ]
        if hasattr(tr, "_build_unified_sequence"):  # diffusers 0.42's name for the concatenation
            self._undo.append(_wrap(tr, "_build_unified_sequence", after=self._unified))
        graphed = tr.__dict__.get("forward")
        if hasattr(graphed, "paused"):  # --fast's CUDA graph replay would skip the hooks inside the DiT
            graphed.paused = True
            self._undo.append(lambda: setattr(graphed, "paused", False))
        return self

    def __exit__(self, *exc) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo = []


# -- stage builders: each returns its facts, an ordered dict of label -> measured value ---------

def _round(x: float, n: int = 4) -> float:
    return float(round(float(x), n))


def _stage_tokens(engine: Engine, prompt: str, rec: dict, cap: int) -> dict:
    tok = engine.pipe.tokenizer
    chat = engine.chat_text(prompt)
    ids = tok(chat).input_ids
    n_preview = defaults.TRACE_TOKEN_PREVIEW
    pieces = [tok.decode([i]) for i in ids]
    cut = tok.decode(ids[cap:]) if len(ids) > cap else ""
    return {
        "tokenizer": type(tok).__name__,
        "chat-templated text": chat,
        "tokens after the template": len(ids),
        "cap (max_sequence_length)": cap,
        "tokens the DiT received": int(rec["cap_feats"].shape[0]),
        "truncated": len(ids) > cap,
        "tokens cut": max(0, len(ids) - cap),
        "text cut": cut,
        "token preview": pieces[:n_preview] + (["…"] + pieces[-4:] if len(pieces) > n_preview + 4 else pieces[n_preview:]),
    }


def _stage_text_encoder(engine: Engine, rec: dict) -> dict:
    enc = engine.pipe.text_encoder
    states, fed = rec["hidden_states"], rec["cap_feats"]
    fed_cpu = fed.cpu()  # the engine may keep embeddings elsewhere than the encoder ran (offload)
    match = [i for i, s in enumerate(states) if s.shape == fed.shape and torch.equal(s.to("cpu", fed.dtype), fed_cpu)]
    n_layers = len(states) - 1  # hidden_states[0] is the embedding output, [k] the output of layer k
    idx = match[-1] if match else None
    return {
        "class": type(enc).__name__,
        "parameters": count_parameters(enc),
        "hidden states returned": len(states),
        "hidden state fed to the DiT": None if idx is None else f"hidden_states[{idx - len(states)}] (index {idx})",
        "layer": None if idx is None else f"output of layer {idx} of {n_layers}",
        "layers in the loaded config": int(enc.config.num_hidden_layers),
        "embedding shape": list(fed.shape),
        "embedding dtype": str(fed.dtype).removeprefix("torch."),
    }


def _stage_noise(params: GenerationParams, rec: dict) -> dict:
    noise = rec["noise"]
    return {
        "seed": params.seed,
        "generator device": rec["generator_device"],
        "shape": list(noise.shape),
        "dtype": rec["noise_dtype"],
        "mean": _round(noise.mean(), 5),
        "std": _round(noise.std(), 5),
    }


def _stage_patchify(engine: Engine, params: GenerationParams, rec: dict) -> dict:
    pipe, pz = engine.pipe, rec["patchify"]
    vae_factor = int(pipe.vae_scale_factor)
    patch = pz["patch_size"]
    n_img = int((~pz["img_pad"]).sum())
    img_pos = pz["img_pos"][~pz["img_pad"]]  # (t, h, w) ids of the real image tokens: the grid they cover
    grid = (int(img_pos[:, 1].max()) + 1, int(img_pos[:, 2].max()) + 1)
    return {
        "VAE class": type(pipe.vae).__name__,
        "VAE downscale factor": vae_factor,
        "how the factor is known": f"2^(len(block_out_channels) - 1) with block_out_channels "
                                   f"{list(pipe.vae.config.block_out_channels)}",
        "latent channels": int(pipe.vae.config.latent_channels),
        "image size": [params.width, params.height],
        "latent shape": list(rec["noise"].shape),
        "patch size": patch,
        "image-token grid (h x w)": list(grid),
        "image tokens": n_img,
        "grid x patch x factor": [grid[0] * patch * vae_factor, grid[1] * patch * vae_factor],
        "size multiple": vae_factor * patch,
        "why": f"{vae_factor}x VAE x {patch}x patch = {vae_factor * patch}: each side must split into whole "
               f"patches of {patch} latent pixels, each {vae_factor} image pixels wide",
    }


def _seq_multiple() -> int | None:
    import diffusers.models.transformers.transformer_z_image as zmod

    return getattr(zmod, "SEQ_MULTI_OF", None)


def _stage_sequence(engine: Engine, rec: dict) -> dict:
    tr, pz = engine.pipe.transformer, rec["patchify"]
    n_img, n_img_pad = int((~pz["img_pad"]).sum()), int(pz["img_pad"].sum())
    n_cap, n_cap_pad = int((~pz["cap_pad"]).sum()), int(pz["cap_pad"].sum())
    attn = tr.layers[0].attention
    heads = int(getattr(attn, "heads", tr.config.n_heads))
    return {
        "image tokens + padding": [n_img, n_img_pad],
        "caption tokens + padding": [n_cap, n_cap_pad],
        "padding multiple (SEQ_MULTI_OF)": _seq_multiple(),
        "order": rec.get("order", "not observed (this diffusers has no _build_unified_sequence)"),
        "sequence length at block 1": int(rec["unified_shape"][1]),
        "width (dim)": int(rec["unified_shape"][2]),
        "main layers": len(tr.layers),
        "noise / context refiners": [len(tr.noise_refiner), len(tr.context_refiner)],
        "attention heads": heads,
        "head dim": int(tr.config.dim) // heads,
        "transformer parameters": count_parameters(tr),
    }


def _axis_ranges(pos: torch.Tensor) -> list[list[int]]:
    return [[int(pos[:, a].min()), int(pos[:, a].max())] for a in range(pos.shape[1])] if len(pos) else []


def _stage_rope(engine: Engine, rec: dict) -> dict:
    rope, pz = engine.pipe.transformer.rope_embedder, rec["patchify"]
    cap_real = pz["cap_pos"][~pz["cap_pad"]]
    img_real = pz["img_pos"][~pz["img_pad"]]
    img_pad = pz["img_pos"][pz["img_pad"]]
    return {
        "axes dims (t, h, w)": list(rope.axes_dims),
        "axes lengths": list(rope.axes_lens),
        "theta": float(rope.theta),
        "caption ids, first / last": [cap_real[0].tolist(), cap_real[-1].tolist()],
        "caption range per axis": _axis_ranges(cap_real),
        "image ids, first / last": [img_real[0].tolist(), img_real[-1].tolist()],
        "image range per axis": _axis_ranges(img_real),
        "image padding ids": sorted({tuple(p) for p in img_pad.tolist()}) if len(img_pad) else [],
        "reading": _rope_reading(_axis_ranges(cap_real), _axis_ranges(img_real)),
    }


def rope_separates(cap: list[list[int]], img: list[list[int]]) -> bool:
    """From per-axis id ranges: text runs along the first axis only, the image over the other two only."""
    text_temporal = cap[0][1] > cap[0][0] and all(lo == hi for lo, hi in cap[1:])
    image_spatial = img[0][0] == img[0][1] and all(hi > lo for lo, hi in img[1:])
    return text_temporal and image_spatial


def _rope_reading(cap: list[list[int]], img: list[list[int]]) -> str:
    """One sentence from the measured ranges."""
    if rope_separates(cap, img):
        return (f"caption tokens advance along the first axis ({cap[0][0]}..{cap[0][1]}); image tokens share "
                f"{img[0][0]} on it and spread over the other two ({img[1][0]}..{img[1][1]} x {img[2][0]}..{img[2][1]})")
    return "the ids do not separate text (one axis) from image (the other two)"


def _x0_estimates(noise: torch.Tensor, latents: list[torch.Tensor], sigmas: list[float]) -> list[torch.Tensor]:
    """The clean image the model predicts at each pass, from the Euler step the scheduler took.

    The pipeline negates the DiT output to get the velocity v, and the scheduler steps
    x_next = x + (s_next - s) * v; so v = (x_next - x) / (s_next - s) and x0 = x - s * v.
    """
    out, x = [], noise
    for i, nxt in enumerate(latents):
        s, s_next = sigmas[i], sigmas[i + 1]
        v = (nxt - x) / (s_next - s)
        out.append(x - s * v)
        x = nxt
    return out


def _stage_denoise(engine: Engine, params: GenerationParams, rec: dict, passes: int) -> dict:
    sch = engine.pipe.scheduler
    sig = [_round(s) for s in sch.sigmas.tolist()]
    secs = rec["pass_seconds"]
    return {
        "scheduler": type(sch).__name__,
        "shift (config)": float(sch.config.shift),
        "dynamic shifting": bool(sch.config.use_dynamic_shifting),
        "mu computed by the pipeline": None if rec.get("mu") is None else _round(rec["mu"]),
        "sigmas asked (before shift)": [_round(s) for s in rec.get("sigmas_in") or []],
        "sigmas (shifted, then the end)": sig,
        "timesteps": [_round(t, 2) for t in sch.timesteps.tolist()],
        "DiT timestep input (1 - sigma)": [_round(t) for t in rec["timestep_inputs"]],
        "steps asked": params.steps,
        "transformer passes (counted)": passes,
        "model evaluations (counted)": rec["evaluations"],
        "guidance": params.guidance,
        "seconds per pass": [_round(s, 4) for s in secs],
        "mean seconds per pass": _round(sum(secs) / len(secs), 4) if secs else None,
        "x0 estimate": "x0 = x_t - sigma * v, v = -DiT output (the pipeline negates it); decoded per pass",
    }


def _stage_decode(engine: Engine, rec: dict, final: torch.Tensor, seconds: float, image) -> dict:
    cfg = engine.pipe.vae.config
    z = rec["decoder_in"]
    expected = final / cfg.scaling_factor + cfg.shift_factor
    applied = None
    if getattr(engine.pipe.vae, "post_quant_conv", None) is None and z.shape == expected.shape:
        applied = float((z - expected).abs().max())
    return {
        "scaling factor": float(cfg.scaling_factor),
        "shift factor": float(cfg.shift_factor),
        "formula": f"z = latents / {cfg.scaling_factor} + {cfg.shift_factor}",
        "max |decoder input - z|": applied,
        "decoder input shape": list(z.shape),
        "decoder output shape": list(rec["decoder_out_shape"]),
        "upscale (output / input side)": rec["decoder_out_shape"][-1] / z.shape[-1],
        "image size": list(image.size),
        "seconds": _round(seconds, 4),
    }


TITLES = {
    1: "Tokenization", 2: "Text encoder", 3: "Noise", 4: "Latent space and patchify",
    5: "Single-stream sequence", 6: "3D RoPE", 7: "Denoising", 8: "VAE decode",
}


# -- image-to-image and inpainting: the input image becomes the starting latents ----------------
INPUT_STAGE = "3i"  # after the noise (3), before the latent grid (4)
INPUT_TITLE = "Input image to initial latents"


@contextlib.contextmanager
def _edit_hooks(engine: Engine, rec: dict):
    """Listen to what an input image adds: the img2img / inpaint pipeline the engine builds per call (its
    generator, its mask at latent resolution) and, on the shared scheduler, the strength's start index and
    the first scale_noise (input latents, noise, sigma: the noising)."""
    sch = engine.pipe.scheduler

    def scale_noise(args, kwargs, out):
        if "input_latents" in rec:  # inpainting calls it again every pass to re-noise the kept region
            return
        call = dict(zip(("sample", "timestep", "noise"), args)) | kwargs
        rec["input_latents"] = call["sample"].detach().float().cpu().clone()
        rec["noise"] = call["noise"].detach().float().cpu().clone()
        rec["noise_dtype"] = str(call["noise"].dtype).removeprefix("torch.")
        rec["start_latents"] = out.detach().float().cpu().clone()
        rec["start_timestep"] = float(torch.as_tensor(call["timestep"]).flatten()[0])

    def begin(args, kwargs):
        rec["begin_index"] = int(args[0] if args else kwargs.get("begin_index", 0))

    def prepare(args, kwargs):
        gen = kwargs.get("generator", args[8] if len(args) > 8 else None)
        rec["generator_device"] = str(gen.device) if isinstance(gen, torch.Generator) else None

    def mask(args, kwargs, out):
        rec["mask_latents"] = out[0].detach().float().cpu().clone()

    def built(args, kwargs, edit):  # a fresh pipeline per call: its wrappers go with it
        rec["edit_pipeline"] = type(edit).__name__
        _wrap(edit, "prepare_latents", before=prepare)
        if hasattr(edit, "prepare_mask_latents"):
            _wrap(edit, "prepare_mask_latents", after=mask)

    undo = [_wrap(sch, "scale_noise", after=scale_noise), _wrap(sch, "set_begin_index", before=begin),
            _wrap(engine, "edit_pipeline", after=built)]
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


def _stage_input(engine: Engine, params: GenerationParams, rec: dict, recipe: dict) -> dict:
    """What the input image became: VAE latents, noised to the strength's first sigma; the passes skipped."""
    sch, cfg = engine.pipe.scheduler, engine.pipe.vae.config
    start = rec.get("begin_index", 0)
    sigma = float(sch.sigmas[start])
    x0, noise, xt = rec["input_latents"], rec["noise"], rec["start_latents"]
    d = noise - x0
    fitted = float(((xt - x0) * d).sum() / (d * d).sum())  # the sigma the tensors themselves show
    inp = (recipe.get("inputs") or {}).get("image") or {}
    facts = {
        "mode": recipe.get("mode"),
        "pipeline": rec.get("edit_pipeline"),
        "input image": f"{inp.get('width')}x{inp.get('height')} {inp.get('format')}, sha256 {str(inp.get('sha256'))[:12]}",
        "VAE encode": f"latents = (VAE.encode(image).sample - {cfg.shift_factor}) x {cfg.scaling_factor}",
        "input latents shape": list(x0.shape),
        "input latents mean / std": [_round(x0.mean(), 5), _round(x0.std(), 5)],
        "strength": params.strength,
        "steps asked": params.steps,
        "strength x steps": _round(params.strength * params.steps),
        "passes skipped (the schedule's first)": start,
        "passes run (counted)": recipe["passes"],
        "first sigma (sigmas[skipped])": _round(sigma),
        "first timestep": _round(rec["start_timestep"], 2),
        "noise mixed in": f"x = {sigma:.4f} x noise + {1 - sigma:.4f} x input latents",
        "sigma measured from the tensors": _round(fitted),
        "max |initial latents - formula|": float((xt - (sigma * noise + (1 - sigma) * x0)).abs().max()),
    }
    if "mask_latents" in rec:
        m = rec["mask_latents"]
        facts |= {
            "mask at latent resolution (h x w)": list(m.shape[-2:]),
            "repainted fraction (mask > 0.5)": _round((m > 0.5).float().mean()),
            "kept region": "reset to the input latents noised to each pass's sigma (the x0 there is the input)",
        }
    return facts


def _input_pictures(engine: Engine, rec: dict, result, sigma: float) -> list[tuple[str, Any]]:
    """The input stage's pictures: the input (and mask) as the pipeline got them, the input latents and the
    initial latents decoded by the VAE, and the mask at latent resolution."""
    from PIL import Image

    items = result.inputs[0] if result.inputs else []
    out = [(f"input {i.role}", i.pixels) for i in items]
    out += [("input latents, decoded (VAE round trip)", decode_preview(engine, rec["input_latents"])),
            (f"initial latents at sigma {sigma:.3f}, decoded", decode_preview(engine, rec["start_latents"]))]
    if "mask_latents" in rec:
        m = (rec["mask_latents"][0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        out.append(("mask at latent resolution", Image.fromarray(m, "L")))
    return out


def run_trace(engine: Engine, params: GenerationParams, pictures: dict | None = None) -> tuple[dict, list, Any]:
    """Generate once under the probe. Returns (trace dict, per-pass preview images, final image).
    `pictures`, when given, receives {stage: [(caption, image), ...]} for the stages with pictures of
    their own (an input image's stage)."""
    pipe = engine.pipe
    # the prompt cache would skip the text encoder, and stage 2 is about watching it run
    cache = getattr(engine, "_prompt_cache", None)
    if cache is not None:
        cache.pop(params.prompt, None)
    cap = inspect.signature(type(pipe).__call__).parameters["max_sequence_length"].default
    latents: list[torch.Tensor] = []
    controlnet = getattr(engine, "controlnet", None)
    with Probe(pipe) as probe, _edit_hooks(engine, probe.rec), ControlProbe(controlnet, probe) as control:
        result = engine.generate(params, on_step=lambda s, n, lat: latents.append(lat.detach().float().cpu().clone()))
    rec, recipe = probe.rec, result.recipes[0]
    missing = [k for k in ("hidden_states", "noise", "patchify", "cap_feats", "decoder_in") if k not in rec]
    if missing:
        raise GenerationFailed(f"trace: the pipeline ran without reaching the hooks for {', '.join(missing)}; "
                               "this diffusers version's ZImagePipeline differs from the one zturbo traces")
    passes = recipe["passes"]
    sigmas = pipe.scheduler.sigmas.tolist()
    start = rec.get("begin_index", 0) if params.image is not None else 0  # an input image skips the first
    x0s = _x0_estimates(rec.get("start_latents", rec["noise"]), latents, sigmas[start:])
    stages = {
        1: _stage_tokens(engine, params.prompt, rec, cap),
        2: _stage_text_encoder(engine, rec),
        3: _stage_noise(params, rec),
        4: _stage_patchify(engine, params, rec),
        5: _stage_sequence(engine, rec),
        6: _stage_rope(engine, rec),
        7: _stage_denoise(engine, params, rec, passes),
        8: _stage_decode(engine, rec, latents[-1], recipe["timings"].get("decoding", 0.0), result.image),
    }
    titles = dict(TITLES)
    if params.image is not None:  # the input image's stage goes in after the noise
        order = list(stages.items())
        at = [k for k, _ in order].index(3) + 1
        stages = dict(order[:at] + [(INPUT_STAGE, _stage_input(engine, params, rec, recipe))] + order[at:])
        titles[INPUT_STAGE] = f"{INPUT_TITLE} ({recipe.get('mode')})"
        if pictures is not None:
            pictures[INPUT_STAGE] = _input_pictures(engine, rec, result, sigmas[start])
    trace = {
        "params": recipe["params"],
        "model": recipe["model"],
        "device": recipe["device"],
        "versions": recipe["versions"],
        "timings": recipe["timings"],
        "stages": [{"stage": n, "title": titles[n], "facts": facts} for n, facts in stages.items()],
    }
    if control.rec["passes"]:  # the ControlNet's branch, shown just before the denoising it steers
        at = next(i for i, s in enumerate(trace["stages"]) if s["stage"] == 7)
        trace["stages"].insert(at, {"stage": "7c", "title": "ControlNet branch",
                                    "facts": _stage_control(engine, params, control.rec)})
    previews = [decode_preview(engine, x0) for x0 in x0s]
    return trace, previews, result.image


@torch.no_grad()
def decode_preview(engine: Engine, x0: torch.Tensor):
    """Decode one x0 estimate with the loaded VAE, as the pipeline decodes its final latents."""
    vae = engine.pipe.vae
    z = x0.to(engine.device, vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    decoded = vae.decode(z, return_dict=False)[0]
    return to_pil(decoded, engine.pipe.image_processor.config.do_normalize)


class ControlProbe:
    """Hooks on the ControlNet (when one is loaded): what it reads (the control image's VAE latents) and what it
    gives the DiT on every pass (hints per layer, already times the scale), timed. No-op without one.
    The engine builds its ControlNet pipeline per call, so the noise is caught on the pipeline classes'
    prepare_latents (for `probe`, the main Probe) rather than on an instance."""

    def __init__(self, controlnet, probe: Probe):
        self.controlnet, self.probe = controlnet, probe
        self.rec: dict[str, Any] = {"passes": 0, "hint_mean_abs": [], "seconds": [], "t0": None}
        self._undo: list = []

    def _pre(self, module, args, kwargs):
        context = args[3] if len(args) > 3 else kwargs.get("control_context")
        self.rec["context_shape"] = list(context.shape) if hasattr(context, "shape") else None
        self.rec["scale"] = kwargs.get("conditioning_scale", args[4] if len(args) > 4 else 1.0)
        sync(context.device if hasattr(context, "device") else torch.device("cpu"))
        self.rec["t0"] = time.perf_counter()

    def _post(self, module, args, output):
        first = next(iter(output.values()))
        sync(first.device)
        self.rec["seconds"].append(time.perf_counter() - self.rec["t0"])
        self.rec["passes"] += 1
        self.rec["hint_layers"] = sorted(output)
        self.rec["hint_mean_abs"].append(float(sum(h.float().abs().mean() for h in output.values()) / len(output)))

    def __enter__(self) -> ControlProbe:
        if self.controlnet is not None:
            from diffusers import ZImageControlNetInpaintPipeline, ZImageControlNetPipeline

            hooks = [self.controlnet.register_forward_pre_hook(self._pre, with_kwargs=True),
                     self.controlnet.register_forward_hook(self._post)]
            self._undo = [h.remove for h in hooks]
            for cls in (ZImageControlNetPipeline, ZImageControlNetInpaintPipeline):
                self._undo.append(self._wrap_class(cls))
        return self

    def _wrap_class(self, cls):
        original = cls.__dict__["prepare_latents"]

        @functools.wraps(original)
        def prepare_latents(pipe, *args, **kwargs):
            out = original(pipe, *args, **kwargs)
            self.probe._prepare_latents(args, kwargs, out)
            return out

        cls.prepare_latents = prepare_latents
        return lambda: setattr(cls, "prepare_latents", original)

    def __exit__(self, *exc) -> None:
        for undo in self._undo:
            undo()
        self._undo = []


def _stage_control(engine: Engine, params: GenerationParams, rec: dict) -> dict:
    cn, record = engine.controlnet, engine.controlnet_record or {}
    cfg = cn.config
    own = sum(count_parameters(m) for m in (cn.control_layers, cn.control_all_x_embedder, cn.control_noise_refiner)
              if m is not None)
    latent = engine.pipe.transformer.in_channels
    extra = cfg.control_in_dim - latent
    channels = (f"{latent} VAE latent channels of the control image" + (
        "" if not extra else f" + {extra} (1 mask + {extra - 1} masked-image latents)" if params.mask is not None
        else f" + {extra} zeros (the mask and masked-image channels: used only when inpainting)"))
    secs = rec["seconds"]
    return {
        "ControlNet": f"{record.get('name')} ({record.get('variant')}), sha256 {str(record.get('sha256'))[:12]}",
        "control image": f"{params.control_image} ({params.control_type}"
                         + (": Canny edges computed by zturbo" if params.control_type == "canny" else ": as given") + ")",
        "control image -> VAE latents (ControlNet input)": rec.get("context_shape"),
        "input channels": channels,
        "own weights (control blocks)": own,
        "shared with the DiT": "t_embedder, x/cap embedders, RoPE, noise and context refiners, pad tokens",
        "hints added at DiT layers": rec.get("hint_layers"),
        "conditioning scale": rec.get("scale"),
        "what the scale does": "every hint is multiplied by it before it is added to the DiT's hidden states at "
                               "those layers: 0 turns the ControlNet off, 1 adds the hints as trained",
        "mean |hint| per pass (after the scale)": [_round(h, 5) for h in rec["hint_mean_abs"]],
        "ControlNet runs (one per pass)": rec["passes"],
        "seconds per ControlNet run": [_round(s, 4) for s in secs],
    }


def stage(trace: dict, n: int) -> dict:
    """The facts of stage n (1..8, or INPUT_STAGE)."""
    return next(s["facts"] for s in trace["stages"] if s["stage"] == n)


__all__ = ["Probe", "run_trace", "stage", "TITLES", "INPUT_STAGE", "decode_preview"]
