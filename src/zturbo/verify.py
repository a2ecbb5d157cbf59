"""`zturbo verify`: the article's checkable claims against the installed stack and the loaded model.

Each row: claim | article says | measured | verdict (holds / differs / can't check here) | why.
Every measured value comes from a module, a config, a file or a run, never from this file:

* architecture rows measure the loaded model. When that is the tiny stand-in, they measure the
  installed diffusers / transformers classes built at the published configs on the meta device
  (no weights, no memory): the hub's own configs when its snapshot is in the HF cache, else
  PUBLISHED_CONFIGS below. That counts the real 6.15 B parameters offline.
* behaviour rows run the loaded pipeline (any model: the schedule and pass count do not depend
  on the weights), counting transformer passes with a hook.
* file rows stat the GGUF files in the HF cache.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import torch

from . import defaults
from .models import published

HOLDS, DIFFERS, CANT = "holds", "differs", "can't check here"

# The published configs, used only to build weightless reference models when the hub snapshot is
# not cached. The verdicts come from what the installed classes build from them.
PUBLISHED_CONFIGS = published.CONFIGS
# The article's GGUF sizes (Experiment 6 and its checklist), in GB = 1e9 bytes, and the unsloth file names
ARTICLE_GGUF_GB = {"BF16": ("z-image-turbo-BF16.gguf", "12.3"), "Q8": (defaults.GGUF_FILES["q8"], "7.22"),
                   "Q4": (defaults.GGUF_FILES["q4"], "5.02"), "Q2": (defaults.GGUF_FILES["q2"], "3.64")}
ARTICLE_DIFFUSERS = "0.39.0.dev0"


@dataclasses.dataclass
class Check:
    claim: str
    article: str
    measured: str
    verdict: str
    why: str = ""
    source: str = ""  # where the measurement came from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- verdict helpers (pure: tested against values that hold and values that differ) -------------

def near(measured: float, claimed: float, rel: float) -> str:
    return HOLDS if abs(measured - claimed) <= rel * abs(claimed) else DIFFERS


def rounds_to(measured: float, claimed: str) -> str:
    """Holds when `measured` rounded to the claim's decimals is the claim ("7.22" vs 7.2247)."""
    decimals = len(claimed.split(".")[1]) if "." in claimed else 0
    return HOLDS if round(measured, decimals) == float(claimed) else DIFFERS


def same(measured: Any, claimed: Any) -> str:
    return HOLDS if measured == claimed else DIFFERS


def billions(n: int) -> str:
    return f"{n:,} ({n / 1e9:.2f}B)"


def same_minor(installed: str, claimed: str) -> str:
    from packaging.version import Version

    a, b = Version(installed), Version(claimed)
    return HOLDS if (a.major, a.minor) == (b.major, b.minor) else DIFFERS


# -- models to measure ------------------------------------------------------------------------

def _count(module: torch.nn.Module) -> int:
    from .trace import count_parameters

    return count_parameters(module)


def _hub_config(sub: str) -> dict | None:
    """The hub's config.json of a component, if the snapshot is in the HF cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(defaults.MODEL_ID, f"{sub}/config.json")
    except Exception:
        return None
    if isinstance(path, str) and Path(path).is_file():
        cfg = json.loads(Path(path).read_text())
        return {k: v for k, v in cfg.items() if not k.startswith("_")}
    return None


def reference_models(configs: dict[str, dict] | None = None) -> tuple[dict[str, torch.nn.Module], str]:
    """Transformer, text encoder and VAE at the published configs, on the meta device (no weights).

    Returns (models, where the configs came from).
    """
    import accelerate
    from diffusers import AutoencoderKL, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    if configs is None:
        hub = {k: _hub_config(k) for k in PUBLISHED_CONFIGS}
        origin = "hub configs from the HF cache" if all(hub.values()) else "published configs (zturbo.verify)"
        configs = {k: hub[k] or v for k, v in PUBLISHED_CONFIGS.items()}
    else:
        origin = "given configs"
    te_cfg = {k: v for k, v in configs["text_encoder"].items() if k not in ("architectures", "model_type")}
    with accelerate.init_empty_weights():
        models = {
            "transformer": ZImageTransformer2DModel.from_config(configs["transformer"]),
            "text_encoder": Qwen3Model(Qwen3Config(**te_cfg)),
            "vae": AutoencoderKL.from_config(configs["vae"]),
        }
    return models, origin


# -- architecture: measured from modules -------------------------------------------------------

def vae_factor(vae) -> int:
    """Spatial downscale of the VAE encoder, counted from its downsampling blocks."""
    return 2 ** sum(1 for b in vae.encoder.down_blocks if getattr(b, "downsamplers", None))


def patch_size(transformer) -> int:
    """From the patch embedder: it maps patch x patch x channels latent values to one token."""
    emb = next(iter(transformer.all_x_embedder.values()))
    return round((emb.in_features / transformer.in_channels) ** 0.5)


def architecture_checks(transformer, text_encoder, vae, source: str) -> list[Check]:
    """The article's architecture numbers against three models (loaded, or meta-device builds)."""
    tr_params = _count(transformer)
    layers = len(transformer.layers)
    width = next(iter(transformer.all_x_embedder.values())).out_features
    heads = transformer.layers[0].attention.heads
    te_heads = text_encoder.config.num_attention_heads
    te_name, te_params = type(text_encoder).__name__, _count(text_encoder)
    te_family = HOLDS if te_name.startswith("Qwen3") else DIFFERS
    te_size = near(te_params, 4e9, 0.1)
    factor, ch, patch = vae_factor(vae), vae.decoder.conv_in.in_channels, patch_size(transformer)
    return [
        Check("DiT parameters", "6.15B", billions(tr_params), near(tr_params, 6.15e9, 0.005), source=source),
        Check("DiT layers", "30", f"{layers} main (+ {len(transformer.noise_refiner)} noise / "
              f"{len(transformer.context_refiner)} context refiner)", same(layers, 30), source=source),
        Check("DiT hidden width", "3840", str(width), same(width, 3840), source=source),
        Check("DiT attention heads", "32", f"{heads} (head dim {width // heads})", same(heads, 32),
              why=f"32 is the text encoder's query-head count ({te_heads} here)" if heads != 32 and te_heads == 32 else "",
              source=source),
        Check("Text encoder", "Qwen3-4B", f"{te_name}, {billions(te_params)}, {len(text_encoder.layers)} layers",
              HOLDS if te_family == te_size == HOLDS else DIFFERS, source=source),
        Check("VAE downscale", "8x", f"{factor}x ({type(vae).__name__})", same(factor, 8), source=source),
        Check("Latent channels", "16", str(ch), same(ch, 16), source=source),
        Check("Patch size", "2", str(patch), same(patch, 2), source=source),
        Check("Sizes divisible by", "16 (= 8 x 2)", f"{factor * patch} (= {factor} x {patch})",
              same(factor * patch, 16), source=source),
    ]


# -- behaviour: measured by running the loaded pipeline ------------------------------------------

def _passes(engine, steps: int, guidance: float = 0.0) -> tuple[int, int, int]:
    """(passes counted, model evaluations counted, scheduler timesteps) of one small generation."""
    from .params import GenerationParams

    side = defaults.VERIFY_SIZE
    p = GenerationParams(prompt="a robot", seed=0, width=side, height=side, steps=steps, guidance=guidance, rng="cpu")
    rec = engine.generate(p).recipes[0]
    return rec["passes"], rec["model_evaluations"], len(engine.pipe.scheduler.timesteps)


def _stock_encoding(engine, prompt: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """diffusers' own prompt encoding (padded to the cap, truncated) and the hidden states it chose from."""
    seen: dict = {}

    def hook(module, args, kwargs, output):
        mask = kwargs["attention_mask"][0].bool()
        seen["states"] = [h[0][mask] for h in output.hidden_states]

    h = engine.pipe.text_encoder.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            embeds, _ = engine.pipe.encode_prompt(prompt, do_classifier_free_guidance=False)
    finally:
        h.remove()
    return embeds[0], seen["states"]


def behaviour_checks(engine) -> list[Check]:
    from .trace import rope_separates, run_trace, stage
    from .params import GenerationParams

    src = "loaded pipeline, passes counted by a hook"
    rows: list[Check] = []
    pipe = engine.pipe
    parts = {k: type(v).__name__ for k, v in pipe.components.items() if v is not None}
    expected = {"scheduler": "FlowMatchEulerDiscreteScheduler", "text_encoder": "Qwen3Model",
                "tokenizer": "Qwen2Tokenizer", "transformer": "ZImageTransformer2DModel", "vae": "AutoencoderKL"}
    parts_hold = set(parts) == set(expected) and all(parts[k].startswith(v) for k, v in expected.items())
    rows.append(Check("Pipeline parts", ", ".join(expected.values()), ", ".join(parts.values()),
                      HOLDS if parts_hold else DIFFERS, source="loaded pipeline"))
    tok_name = type(pipe.tokenizer).__name__
    rows.append(Check("Tokenizer", "Qwen2Tokenizer", tok_name, HOLDS if tok_name.startswith("Qwen2Tokenizer") else DIFFERS,
                      source="loaded pipeline"))
    chat = engine.chat_text("PROMPT")
    rows.append(Check("Chat template", "<|im_start|>user … <|im_end|>", chat.replace("\n", "\\n"),
                      HOLDS if chat.startswith("<|im_start|>user\nPROMPT<|im_end|>") else DIFFERS,
                      source="loaded tokenizer"))

    long_prompt = "a robot " * (defaults.MAX_SEQUENCE_LENGTH + 50)
    embeds, _ = _stock_encoding(engine, long_prompt)
    n_in = len(pipe.tokenizer(engine.chat_text(long_prompt)).input_ids)
    rows.append(Check("Prompt token cap", "512 tokens", f"{embeds.shape[0]} of {n_in} tokens reach the DiT (silent cut)",
                      same(embeds.shape[0], 512), source="diffusers encode_prompt"))

    embeds, states = _stock_encoding(engine, "a robot on a red background")
    idx = next((i for i, s in enumerate(states) if s.shape == embeds.shape and torch.equal(s, embeds)), None)
    n = len(states) - 1
    measured = "no hidden state matched" if idx is None else f"hidden_states[{idx - len(states)}]: output of layer {idx} of {n}"
    rows.append(Check("Conditioning layer", "a near-final hidden layer, not the last output", measured,
                      HOLDS if idx is not None and n - 3 <= idx < n else DIFFERS, source="diffusers encode_prompt"))

    trace, _, _ = run_trace(engine, GenerationParams(prompt="a robot", seed=0, width=defaults.VERIFY_SIZE,
                                                     height=defaults.VERIFY_SIZE, steps=1, rng="cpu"))
    seq, rope = stage(trace, 5), stage(trace, 6)
    img, cap = seq["image tokens + padding"], seq["caption tokens + padding"]
    total = seq["sequence length at block 1"]
    rows.append(Check("Single stream", "text and image tokens in one sequence, one tower",
                      f"{sum(img)} image + {sum(cap)} caption = {total} tokens into each of {seq['main layers']} blocks",
                      same(total, sum(img) + sum(cap)), source="trace hooks"))
    cap_r, img_r = rope["caption range per axis"], rope["image range per axis"]
    rows.append(Check("3D RoPE", "image on height/width axes, text on a separate temporal axis",
                      f"caption ids t {cap_r[0]}, h/w 0; image ids t {img_r[0][0]}, h {img_r[1]}, w {img_r[2]}",
                      HOLDS if rope_separates(cap_r, img_r) else DIFFERS, source="trace hooks"))

    p9, _, t9 = _passes(engine, 9)
    rows.append(Check("Steps 9 -> passes", "8 forward passes (8 scheduler steps)", f"{p9} passes, {t9} timesteps",
                      same(p9, 8), why="diffusers >= 0.39 runs one pass per step; the 9th step of older releases "
                      "had dt = 0" if p9 != 8 else "", source=src))
    p8, e8, _ = _passes(engine, 8)
    rows.append(Check("Steps 8 -> passes", "8 (the distilled target, 8 NFEs)", f"{p8} passes", same(p8, 8), source=src))
    p2, e2, _ = _passes(engine, 2, guidance=0.0)
    rows.append(Check("Guidance 0", "one evaluation per step (no unconditional pass)",
                      f"{e2 / p2:g} evaluation per pass" if e2 == p2 else f"{e2 / p2:g} evaluations per pass", same(e2, p2), source=src))
    p2, e2, _ = _passes(engine, 2, guidance=2.0)
    rows.append(Check("Guidance > 0", "adds an unconditional pass per step", f"{e2 / p2:g} evaluations per pass (2.0)",
                      same(e2, 2 * p2), source=src))
    return rows


# -- files and versions --------------------------------------------------------------------------

def gguf_checks(locate: Callable[[str], str | None] | None = None) -> list[Check]:
    """GGUF file sizes of the article against the files in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    locate = locate or (lambda f: try_to_load_from_cache(defaults.GGUF_REPO, f))
    rows = []
    for label, (filename, claimed) in ARTICLE_GGUF_GB.items():
        try:
            path = locate(filename)
        except Exception:
            path = None
        if isinstance(path, str) and Path(path).is_file():
            size = Path(path).stat().st_size
            rows.append(Check(f"GGUF {label} size", f"{claimed} GB", f"{size:,} bytes ({size / 1e9:.3f} GB)",
                              rounds_to(size / 1e9, claimed), source=f"HF cache: {filename}"))
        else:
            rows.append(Check(f"GGUF {label} size", f"{claimed} GB", "-", CANT,
                              why=f"{filename} is not in the HF cache (hf download {defaults.GGUF_REPO} {filename})",
                              source="HF cache"))
    return rows


def version_checks() -> list[Check]:
    installed = importlib_metadata.version("diffusers")
    verdict = same_minor(installed, ARTICLE_DIFFUSERS)
    return [Check("diffusers version", f"~{ARTICLE_DIFFUSERS}", installed, verdict,
                  why="newer: steps now equal transformer passes" if verdict == DIFFERS else "",
                  source="installed package")]


def unmeasurable() -> list[Check]:
    why = "a training or benchmark claim: nothing in the weights or the code measures it"
    return [
        Check("Distillation", "Decoupled DMD + RL; base needs ~100 passes", "-", CANT, why=why),
        Check("Rankings", "Elo 1025 (vendor arena); #1 open-weights model", "-", CANT, why=why),
    ]


def run_verify(engine) -> dict:
    """All checks against `engine` (a loaded zturbo Engine). Returns a JSON-able dict."""
    pipe = engine.pipe
    if engine.info.is_tiny:
        models, origin = reference_models()
        arch = architecture_checks(models["transformer"], models["text_encoder"], models["vae"],
                                   source=f"meta-device build, {origin}")
        note = ("the loaded model is the tiny stand-in, so architecture rows measure the installed classes "
                f"built at the {origin} on the meta device (no weights)")
    else:
        arch = architecture_checks(pipe.transformer, pipe.text_encoder, pipe.vae, source="loaded model")
        note = ""
    checks = arch + behaviour_checks(engine) + gguf_checks() + version_checks() + unmeasurable()
    counts = {v: sum(c.verdict == v for c in checks) for v in (HOLDS, DIFFERS, CANT)}
    return {
        "model": engine.info.to_dict(),
        "device": engine.device_name,
        "versions": engine.versions,
        "note": note,
        "checks": [c.to_dict() for c in checks],
        "summary": counts,
    }


def render_table(result: dict) -> str:
    """claim | article says | measured | verdict, cells wrapped; a "why" line under a row that has one."""
    import textwrap

    widths = (20, 32, 46, 16)
    head = ("claim", "article says", "measured", "verdict")
    lines = [f"zturbo verify — {result['model']['label']} on {result['device']}; diffusers "
             f"{result['versions'].get('diffusers')}"]
    if result["note"]:
        lines += textwrap.wrap(f"note: {result['note']}", sum(widths) + 6)
    lines += ["", "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    for c in result["checks"]:
        cells = [textwrap.wrap(c[k], w) or [""] for k, w in zip(("claim", "article", "measured", "verdict"), widths)]
        for i in range(max(len(x) for x in cells)):
            lines.append("  ".join((x[i] if i < len(x) else "").ljust(w) for x, w in zip(cells, widths)).rstrip())
        if c["why"]:
            lines += textwrap.wrap(f"why: {c['why']}", sum(widths[1:]) + 4, initial_indent=" " * (widths[0] + 2),
                                   subsequent_indent=" " * (widths[0] + 7))
    s = result["summary"]
    lines += ["", f"{s[HOLDS]} hold, {s[DIFFERS]} differ, {s[CANT]} can't be checked here"]
    return "\n".join(lines)
