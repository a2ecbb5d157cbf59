"""Engine: load once, then generate(params) -> Result.

The generate body is written as numbered stages, the article's Part 3 in code:
  1-2. encode the prompt (chat template, Qwen3, hidden_states[-2]); cached by prompt
  3.   draw the starting noise from the seed (on the rng device); with an input image, encode it with
       the VAE and noise it to the first sigma that `strength` keeps (image-to-image, inpainting); with a
       control image, encode it with the VAE: the ControlNet turns it into hints added to the DiT's blocks
  4-7. denoise: the DiT runs one pass per step (counted by a hook, not assumed); an input image
       skips the schedule's first steps (strength 0.6 of 8 steps = 5 passes)
  8.   decode the latents with the VAE
Stages 3-7 run inside diffusers' own pipeline call (ZImagePipeline, or ZImageImg2ImgPipeline /
ZImageInpaintPipeline / ZImageControlNetPipeline / ZImageControlNetInpaintPipeline built on the same
modules), so zturbo's pixels equal stock diffusers' for the same weights, prompt, inputs and seed (tests
hold us to it).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from . import defaults, machine
from .errors import Cancelled, GenerationFailed, InvalidParams, OutOfMemory
from .inputs import InputImage, read_inputs, write_copy
from .metadata import save_png
from .models import LoadedModel
from .params import GenerationParams, seed_series

log = logging.getLogger("zturbo")


class StepCallback(Protocol):
    def __call__(self, step: int, total: int, latents: torch.Tensor) -> None: ...


@dataclasses.dataclass(frozen=True)
class PromptEncoding:
    embeds: torch.Tensor  # (tokens, hidden) on the engine's device
    tokens: int  # after the chat template, before the cap
    dropped: int  # tokens cut by the 512-token cap

    @property
    def truncated(self) -> bool:
        return self.dropped > 0


@dataclasses.dataclass
class Result:
    """One generate() call: images[i] was made from params[i] (seeds S..S+N-1)."""

    images: list[Image.Image]
    params: list[GenerationParams]
    recipes: list[dict[str, Any]]  # what each PNG carries
    warnings: list[str]
    inputs: list[list[InputImage]] = dataclasses.field(default_factory=list)  # per image: input image, mask, control

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    @property
    def passes(self) -> int:
        """Transformer forward passes per image, counted by a hook."""
        return self.recipes[0]["passes"]

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage, summed over the images."""
        out: dict[str, float] = collections.defaultdict(float)
        for r in self.recipes:
            for k, v in r["timings"].items():
                out[k] += v
        return dict(out)

    def save(self, targets: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
        """Write each image with its recipe: one path for a one-image result, else a list of one path per
        image. Like Image.save, an existing file is replaced (the CLI asks for --overwrite first).
        An input image, mask and control image are copied beside each PNG (NAME.input.jpg, NAME.mask.png,
        NAME.control.png: the bytes as given) and the recipe names the copies, so --from finds them again."""
        if isinstance(targets, (str, os.PathLike)):
            targets = [targets]  # not iterated: a str would be one file per character
        targets, n = list(targets), len(self.images)
        wrong = [t for t in targets if not isinstance(t, (str, os.PathLike))]
        if wrong:
            raise InvalidParams(f"save() takes paths (str or Path), got {type(wrong[0]).__name__}")
        if len(targets) != n:
            want = "one path" if n == 1 else f"a list of {n} paths, one per image"
            raise InvalidParams(f"this result holds {n} image{'s' * (n != 1)}: save() takes {want}, "
                                f"got {len(targets)}")
        inputs = self.inputs or [[] for _ in self.images]
        out = []
        for im, target, recipe, items in zip(self.images, targets, self.recipes, inputs):
            for item in items:  # the copies first: a PNG on disk never names a copy that is missing
                recipe["inputs"][item.role]["file"] = write_copy(item, target).name
            out.append(save_png(im, target, recipe))
        return out


def quiet_libraries() -> None:
    """diffusers' and transformers' per-call warnings off: zturbo says what matters itself."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


class Engine:
    """A loaded pipeline and everything needed to run it repeatedly."""

    def __init__(self, loaded: LoadedModel, memory=None, options=None):
        self.loaded = loaded
        self.pipe = loaded.pipe
        self.info = loaded.info
        self.options = options  # zturbo.LoadOptions: how it was loaded (None when built by hand)
        self.device = self.pipe._execution_device
        self.memory = memory  # zturbo.memory.Placement: offload plan, re-planned per size, OOM retry
        if memory is not None:
            self.device = memory.device  # offloaded models sit on the CPU between uses
        # Plain runs encode prompts exactly as diffusers does (padded to 512 tokens: stock pixels bit for bit,
        # in bf16 too); --fast drops the padding, equal within bf16 rounding and cheaper (README "Speed").
        self.unpadded_prompts = bool(options is not None and options.fast)
        self._prompt_cache: collections.OrderedDict[str, PromptEncoding] = collections.OrderedDict()
        self._passes = 0
        self._evaluations = 0
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.transformer.register_forward_pre_hook(self._count_pass)
        self.versions = machine.versions()
        self.device_name = machine.device_name(self.device)
        self.speed: list = []  # zturbo.speed.Feature: what --fast / --gguf-mode turned on
        self.loras: list[dict] = []  # zturbo.lora.apply_loras: the LoRAs in the weights, for every recipe
        self._switch = None  # zturbo.lora_switch.LoraSwitch, made by the first per-call LoRA
        self._call_loras: list[dict] = []  # the per-call LoRAs of the generate() running now, for its recipes
        self.fp8_policy = None  # zturbo.speed.fp8_policy.Fp8Policy when --fp8's GEMMs are on
        self.controlnet = None  # diffusers.ZImageControlNetModel (LoadOptions.controlnet), sharing the transformer's
        self.controlnet_record: dict | None = None  # embedders; what every recipe says about its file

    @classmethod
    def load(cls, options=None, **fields: Any) -> Engine:
        """zturbo.load(options, **fields): `Engine.load(model="tiny", device="cpu")` or
        `Engine.load(LoadOptions(...))`. The fields and what they do: zturbo.LoadOptions."""
        from .loading import load

        return load(options, **fields)

    # -- hooks --------------------------------------------------------------------------------
    def _count_pass(self, module, args):
        self._passes += 1
        hidden = args[0] if args else None
        self._evaluations += len(hidden) if isinstance(hidden, (list, tuple)) else 1

    # -- stage 1-2: the prompt ----------------------------------------------------------------
    def chat_text(self, prompt: str) -> str:
        return self.pipe.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
            enable_thinking=True,
        )

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> PromptEncoding:
        """Embeddings of `prompt`, cached by prompt text.

        By default diffusers' own encode_prompt computes them (padded to 512 tokens, then stripped), so
        the pixels equal stock diffusers' exactly. With `unpadded_prompts` (--fast) the padding is never
        run: a causal encoder's states for real tokens cannot depend on padding to their right, so the
        result is the same up to rounding (different GEMM shapes round differently in bf16; exact in
        float32, tests/pipeline holds both) at a fraction of the text encoder's cost.
        """
        hit = self._prompt_cache.get(prompt)
        if hit is not None:
            self._prompt_cache.move_to_end(prompt)
            return hit
        tok = self.pipe.tokenizer
        text = self.chat_text(prompt)
        n_tokens = len(tok(text).input_ids)
        if self.unpadded_prompts:
            inputs = tok(text, truncation=True, max_length=defaults.MAX_SEQUENCE_LENGTH, return_tensors="pt")
            ids = inputs.input_ids.to(self.device)
            mask = inputs.attention_mask.to(self.device).bool()
            out = self.pipe.text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            embeds = out.hidden_states[-2][0][mask[0]]
        else:
            embeds = self.pipe.encode_prompt(prompt, device=self.device, do_classifier_free_guidance=False,
                                             max_sequence_length=defaults.MAX_SEQUENCE_LENGTH)[0][0]
        enc = PromptEncoding(embeds, n_tokens, max(0, n_tokens - defaults.MAX_SEQUENCE_LENGTH))
        self._prompt_cache[prompt] = enc
        while len(self._prompt_cache) > defaults.PROMPT_CACHE_SIZE:
            self._prompt_cache.popitem(last=False)
        return enc

    # -- per-call LoRAs ------------------------------------------------------------------------
    def _lora_switch(self):
        from .lora_switch import SPEED_REFUSED, LoraSwitch, load_time_adapters

        if self.options is not None and self.options.speeds_up_gguf:  # --fast / --gguf-mode rewrote the layers
            raise InvalidParams(SPEED_REFUSED)
        if self._switch is None:
            self._switch = LoraSwitch(self.pipe, load_time_adapters(self.loras))
        return self._switch

    def check_lora(self, path: str) -> None:
        """InvalidParams unless `path` is a LoRA this engine can take per call (generate(loras=...)); cached."""
        self._lora_switch().check(path)

    # -- generate -----------------------------------------------------------------------------
    def generate(
        self,
        params: GenerationParams,
        num_images: int = 1,
        on_step: StepCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
        loras: Sequence[tuple[str, float]] | None = None,
    ) -> Result:
        """`num_images` images with seeds S..S+N-1, each one equal to generating that seed alone.

        `loras`: ((path.safetensors, scale), ...) for this call only, as unfused adapters on the loaded
        weights (each file loaded once and kept); a call without them runs the weights as loaded."""
        seeds = seed_series(params.seed, num_images)  # S..S+N-1; past 2^64-1 is an error, never a wrap
        self.check_controlnet(params)
        if loras or self._switch is not None:
            from .lora import normalize

            self._call_loras = self._lora_switch().activate(normalize(loras))
        images, all_params, recipes, warnings, inputs = [], [], [], list(params.notes()), []
        for i, seed in enumerate(seeds):
            p = params if i == 0 else params.replace(seed=seed)
            image, recipe, items = self._generate_one(p, on_step, should_cancel)
            images.append(image)
            all_params.append(p)
            recipes.append(recipe)
            inputs.append(items)
            for w in recipe["warnings"]:
                if w not in warnings:
                    warnings.append(w)
        return Result(images, all_params, recipes, warnings, inputs)

    def _generate_one(self, params, on_step, should_cancel):
        notes = self.memory.prepare(params.width * params.height / defaults.MEGAPIXEL) if self.memory else []
        for retry in (False, True):
            failed = self._attempt(params, on_step, should_cancel)
            if not isinstance(failed, str):
                failed[1]["warnings"][:0] = notes
                return failed
            # out of memory: the failed attempt's tensors are gone with its traceback; free the cache
            self.free_memory()
            lower = None if retry or self.memory is None else self.memory.step_down(params.width * params.height / defaults.MEGAPIXEL)
            if lower is None:
                from .memory import next_option_hint

                hint = (f"it ran in {self.memory.plan.label}; next try {next_option_hint(self.memory.plan)}"
                        if self.memory else "try --quant q4")
                raise OutOfMemory(f"out of GPU memory at {params.width}x{params.height} ({failed}); {hint}, "
                                  "or a smaller image") from None
            note = (f"out of GPU memory; freed it and retried in {lower.label} "
                    f"(start there with --memory {lower.mode})")
            log.warning(note)
            notes.append(note)
        raise AssertionError("unreachable")

    def _attempt(self, params, on_step, should_cancel):
        """(image, recipe, inputs), or the first line of the out-of-memory error as a str."""
        try:
            return self._run_stages(params, on_step, should_cancel)
        except torch.cuda.OutOfMemoryError as exc:
            return str(exc).splitlines()[0][:200]
        except (Cancelled, OutOfMemory, InvalidParams):
            raise
        except Exception as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise GenerationFailed(f"generation failed: {type(exc).__name__}: {exc}") from exc

    def free_memory(self) -> None:
        import gc

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.no_grad()
    def _run_stages(self, params: GenerationParams, on_step, should_cancel):
        pipe, warnings = self.pipe, []
        timings: dict[str, float] = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        # 1-2. prompt -> tokens -> Qwen3 hidden states (cached)
        machine.sync(self.device)
        t0 = time.perf_counter()
        cached = params.prompt in self._prompt_cache
        enc = self.encode_prompt(params.prompt)
        neg = self.encode_prompt(params.negative_prompt) if params.uses_cfg else None
        machine.sync(self.device)
        timings["text_encoding"] = 0.0 if cached and (neg is None) else time.perf_counter() - t0
        if enc.truncated:
            warnings.append(
                f"the prompt is {enc.tokens} tokens after the chat template; the pipeline reads "
                f"{defaults.MAX_SEQUENCE_LENGTH}, so the last {enc.dropped} tokens were dropped"
            )

        # 3. the starting noise: drawn by diffusers from this generator
        rng = params.rng or ("cuda" if self.device.type == "cuda" else "cpu")
        if rng == "cuda" and self.device.type != "cuda":
            # Never swap in CPU noise silently: for the same seed it is a different picture.
            raise InvalidParams(
                "rng 'cuda' (the noise of a GPU run) needs a CUDA device; this engine runs on "
                f"{self.device.type}. Use rng 'cpu' (different noise, so a different image for the same seed)"
            )
        generator = torch.Generator(rng if rng == "cpu" else self.device).manual_seed(params.seed)
        # with an input image: its pixels, and diffusers' pipeline for the mode (the VAE encode and the
        # noising to strength's first sigma happen in its call, from the same generator); with a control
        # image, diffusers' ControlNet pipeline (its VAE encode of the control image happens in its call)
        runner, extra, items = pipe, {}, {}
        if params.image is not None or params.control_image is not None:
            t0 = time.perf_counter()
            items = read_inputs(params)
            timings["inputs"] = time.perf_counter() - t0
            if params.control_image is not None:
                runner = self.control_pipeline(inpaint=params.mask is not None)
                extra = {"control_image": items["control"].pixels,
                         "controlnet_conditioning_scale": params.control_scale}
            else:
                runner = self.edit_pipeline(params.mode)
                extra = {"strength": params.strength}
            if params.image is not None:
                extra["image"] = items["image"].pixels
            if params.mask is not None:
                extra["mask_image"] = items["mask"].pixels

        # 4-7. denoise: one transformer pass per step (fewer with an input image: params.passes)
        total = params.passes

        def step_end(_pipe, i, _t, kwargs):
            if on_step is not None:
                on_step(i + 1, total, kwargs["latents"])
            if should_cancel is not None and should_cancel():
                _pipe._interrupt = True
            return {}

        self._passes = self._evaluations = 0
        t0 = time.perf_counter()
        latents = runner(
            prompt_embeds=[enc.embeds],
            negative_prompt_embeds=[neg.embeds] if neg is not None else None,
            height=params.height, width=params.width, num_inference_steps=params.steps,
            guidance_scale=params.guidance, generator=generator, output_type="latent",
            callback_on_step_end=step_end, **extra,
        ).images
        if runner is not pipe:
            pipe.maybe_free_model_hooks()  # with model offload: what the text-to-image call does at its end
            if self.memory is not None:
                self.memory.release_controlnet()  # ... and the ControlNet goes with the transformer
        machine.sync(self.device)
        timings["denoising"] = time.perf_counter() - t0
        passes, evaluations = self._passes, self._evaluations
        if runner.interrupt:
            # diffusers skips the remaining passes but would still decode: drop the partial image
            raise Cancelled("generation cancelled")

        # 8. VAE decode, exactly as ZImagePipeline does it
        t0 = time.perf_counter()
        finite = bool(torch.isfinite(latents).all())
        z = latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        decoded = pipe.vae.decode(z, return_dict=False)[0]
        image = to_pil(decoded, pipe.image_processor.config.do_normalize)
        machine.sync(self.device)
        timings["decoding"] = time.perf_counter() - t0

        black = int(np.asarray(image).max()) < defaults.BLACK_MAX_VALUE
        if not finite:
            warnings.append("the latents contain NaN or inf: the image is garbage (fp16? use bf16)")
        elif black:
            warnings.append("the image is all black (NaN in the decoder, or a broken weights file?)")
        peak = torch.cuda.max_memory_allocated(self.device) / 1e9 if self.device.type == "cuda" else None
        recipe = {
            "params": dataclasses.replace(params, rng=rng).to_dict(),
            "model": self.info.to_dict(),
            "loras": self.loras + self._call_loras,
            **({"controlnet": self.controlnet_record} if self.controlnet_record else {}),
            "passes": passes,
            "model_evaluations": evaluations,  # per image: 2 per pass with guidance > 0
            "cfg": params.uses_cfg,
            "mode": params.mode,  # text-to-image, image-to-image or inpainting
            "prompt_tokens": enc.tokens,
            "truncated": enc.truncated,
            "nan": not finite,
            "black": black,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "peak_memory_gb": None if peak is None else round(peak, 3),
            "device": self.device_name,
            "versions": self.versions,
            "speed": [str(f) for f in self.speed],
            "fp8_policy": self.fp8_policy.recipe() if self.fp8_policy is not None else None,
            "memory": self.memory.plan.label if self.memory and self.memory.on_gpu else None,
            "warnings": warnings,
        }
        if items:
            recipe["inputs"] = {role: item.to_dict() for role, item in items.items()}
        return image, recipe, list(items.values())

    def edit_pipeline(self, mode: str):
        """diffusers' ZImageImg2ImgPipeline ('image-to-image') or ZImageInpaintPipeline ('inpainting') on this
        engine's own modules: built per call from pipe.components (cheap: no weights are copied or moved;
        not from_pipe, which casts every shared module to float32), so it always runs the modules loaded now."""
        from diffusers import ZImageImg2ImgPipeline, ZImageInpaintPipeline

        cls = ZImageInpaintPipeline if mode == "inpainting" else ZImageImg2ImgPipeline
        c = self.pipe.components
        edit = cls(scheduler=c["scheduler"], vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                   transformer=c["transformer"])
        edit.set_progress_bar_config(disable=True)
        return edit

    def check_controlnet(self, params: GenerationParams) -> None:
        """A control image needs a ControlNet, and a loaded ControlNet needs a control image (it would silently
        do nothing); inpainting with one needs the 33-channel Union 2.0/2.1 (diffusers refuses 1.0)."""
        if params.control_image is not None and self.controlnet is None:
            raise InvalidParams("a control image needs a ControlNet: load one (--controlnet FILE, "
                                "LoadOptions(controlnet=FILE)) or leave the control image out")
        if params.control_image is None and self.controlnet is not None:
            raise InvalidParams(f"a ControlNet is loaded ({self.controlnet_record['name']}) but no control image was "
                                "given, so it would do nothing: give one (--control IMG), or load without --controlnet")
        if params.mask is not None and self.controlnet is not None:
            if self.controlnet.config.control_in_dim == self.pipe.transformer.in_channels:
                raise InvalidParams(f"inpainting with a ControlNet needs Fun-Controlnet-Union 2.0 or 2.1 (33 input "
                                    f"channels); {self.controlnet_record['name']} is {self.controlnet_record['variant']}")

    def control_pipeline(self, inpaint: bool):
        """diffusers' ZImageControlNetPipeline (or ZImageControlNetInpaintPipeline) on this engine's modules and
        ControlNet, built per call like edit_pipeline; its constructor links the ControlNet to the transformer's
        embedders and refiners (ZImageControlNetModel.from_transformer), so nothing is copied, except under group or
        sequential offload: there the ControlNet gets its own GPU copies of the few the offloading keeps from it
        (memory/controlnet.py)."""
        from diffusers import ZImageControlNetInpaintPipeline, ZImageControlNetPipeline

        cls = ZImageControlNetInpaintPipeline if inpaint else ZImageControlNetPipeline
        c = self.pipe.components
        run = cls(scheduler=c["scheduler"], vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                  transformer=c["transformer"], controlnet=self.controlnet)
        if self.memory is not None:
            self.memory.link_controlnet()
        run.set_progress_bar_config(disable=True)
        return run


def to_pil(decoded: torch.Tensor, denormalize: bool = True) -> Image.Image:
    """diffusers' VaeImageProcessor.postprocess(output_type="pil") for one image, the same pixels bit for
    bit, but converted to 8 bits where the tensor is: 3 MB cross to the host instead of 12 MB of float32,
    and no numpy pass over 3 M floats on one CPU core (~25 ms at 1 MP)."""
    x = decoded[0]
    if denormalize:
        x = (x / 2 + 0.5).clamp(0, 1)  # in the decoder's dtype, as diffusers' denormalize does
    x = (x.float() * 255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(x.cpu().numpy())

