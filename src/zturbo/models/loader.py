"""Assemble a ZImagePipeline from a hub id, a local diffusers folder, or the tiny model, with the
transformer at bf16 or from a GGUF file. Every failure to find or read weights becomes a clear error."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from pathlib import Path

import torch

from .. import defaults
from ..atomic import write_text_atomic
from ..errors import CorruptWeights, InvalidParams, WeightsNotFound
from ..hashing import cached_sha256
from ..machine import resolve_device
from ..paths import cache_dir
from . import gguf as gguf_files
from . import tiny

# --quant NAME -> GGUF quant type written for the tiny model (K-quants by models/kquants.py; rows not
# a multiple of 256 weights, like the caption embedder's 32, take llama.cpp's fallback types)
TINY_GGUF_TYPES = {"q8": "Q8_0", "q4": "Q4_K", "q2": "Q2_K"}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for every image's recipe."""

    model: str  # hub id, local folder, or "tiny"
    source: str  # "hub" | "local" | "tiny"
    quant: str  # "q8" | "q4" | "q2" | "gguf" (a --gguf file), or unquantised weights' precision: "bf16" | "fp32" | "fp16"
    label: str
    revision: str | None = None  # hub snapshot commit
    weights_file: str | None = None  # the GGUF file, when one is used
    weights_sha256: str | None = None
    dtype: str = "bfloat16"

    @property
    def is_tiny(self) -> bool:
        return self.source == "tiny"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def recorded_quant(quant: str, gguf, dtype: torch.dtype) -> str:
    """ModelInfo.quant: the GGUF's quant, or for unquantised weights the precision they really run in
    (the tiny model is float32: its recipe must not say bf16)."""
    if gguf and quant == "bf16":
        return "gguf"
    if quant != "bf16":
        return quant
    return {torch.float32: "fp32", torch.float16: "fp16"}.get(dtype, "bf16")


@dataclasses.dataclass
class LoadedModel:
    pipe: object  # diffusers.ZImagePipeline
    info: ModelInfo


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hf_home() -> str:
    return os.environ.get("HF_HOME", "~/.cache/huggingface")


def _missing_weights_message(what: str, repo: str, files: str, filename: str = "") -> str:
    how = "HF_HUB_OFFLINE is set" if _offline() else "the hub could not be reached"
    return (
        f"{what} not found on this machine and {how}. Needed: {files} from the Hugging Face repo "
        f"{repo}. On a machine with network run `hf download {repo}{' ' + filename if filename else ''}` "
        f"(it fills the cache at {_hf_home()}/hub, which zturbo reads offline), or "
        "download a diffusers folder and pass --model PATH; for a GGUF file pass --gguf PATH. "
        "To try zturbo without weights, use --model tiny."
    )


# the base repo's parts a pipeline needs besides the transformer's weights
BASE_PARTS = "model_index.json, the scheduler, tokenizer, text_encoder and vae folders and transformer/config.json"


def _missing_base_message(model: str, gguf_repo_file: tuple[str, str] | None, gguf_path: Path | None) -> str:
    """Everything a load from `model` still needs, named once, with the commands that fetch it."""
    how = "HF_HUB_OFFLINE is set" if _offline() else "the hub could not be reached"
    if gguf_repo_file is None and gguf_path is None:
        return _missing_weights_message("Z-Image-Turbo weights", model, BASE_PARTS.replace(
            " and transformer/config.json", ", the transformer folder"))
    transformer = (f"the GGUF file {gguf_path} replaces only the transformer's weights" if gguf_path else
                   f"{gguf_repo_file[1]} from {gguf_repo_file[0]} replaces only the transformer's weights")
    fetch = f'`hf download {model} --exclude "transformer/*.safetensors"`'
    if gguf_repo_file:
        fetch += f" and `hf download {gguf_repo_file[0]} {gguf_repo_file[1]}`"
    return (
        f"the base model {model} is not on this machine and {how}: {transformer}; the text encoder, VAE, "
        f"tokenizer and configs come from {model} ({BASE_PARTS}; ~10 GB without the bf16 transformer). "
        f"On a machine with network run {fetch} (they fill the cache at {_hf_home()}/hub, which zturbo "
        "reads offline), or pass --model PATH to a local diffusers folder. "
        "To try zturbo without weights, use --model tiny."
    )


_REACHABLE: dict[str, bool] = {}


def _hub_reachable(repo: str) -> bool:
    """One plain request, remembered for the process: without network, hf_hub_download and from_pretrained
    retry for ~25 s each, printing every retry, before they fail."""
    if _offline():
        return False
    if repo not in _REACHABLE:
        from huggingface_hub import HfApi

        try:
            HfApi().model_info(repo, timeout=10)
            _REACHABLE[repo] = True
        except Exception as exc:
            if isinstance(exc, (KeyboardInterrupt, MemoryError)):
                raise
            _REACHABLE[repo] = False
    return _REACHABLE[repo]


def check_safetensors(path: Path) -> None:
    """Cheap integrity check of a .safetensors file: its header parses and its data fits in the file."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise CorruptWeights(f"{path} is not a readable safetensors file ({exc}); download it again") from None
    if 8 + n + end > size:
        raise CorruptWeights(
            f"{path} is truncated ({size} bytes, its header needs {8 + n + end}): "
            "probably an interrupted download; delete it and download it again"
        )


def _check_folder(folder: Path) -> None:
    for f in sorted(folder.rglob("*.safetensors")):
        check_safetensors(f)


def _snapshot(repo: str) -> Path | None:
    """The cached snapshot folder of a hub repo, found without network; None if not cached."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, local_files_only=True, allow_patterns=["model_index.json"]))
    except Exception:
        return None


def _hub_file(repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    missing = WeightsNotFound(_missing_weights_message(f"GGUF file {filename}", repo, filename, filename))
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        if not _hub_reachable(repo):
            raise missing from None
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as exc:
        if isinstance(exc, (KeyboardInterrupt, MemoryError)):
            raise
        raise missing from None


def _tiny_gguf(quant: str) -> Path:
    qtype = TINY_GGUF_TYPES.get(quant)
    if qtype is None:
        raise InvalidParams(
            f"the tiny model has no {quant} file; "
            f"use --quant {' or --quant '.join(TINY_GGUF_TYPES)}, or --gguf PATH"
        )
    path = cache_dir() / "tiny" / f"z-image-turbo-tiny-{qtype}.gguf"
    # The file is stamped with the hash of the tiny transformer it was written from: a file left by an
    # older tiny model (other sizes or weights) is rewritten instead of failing to load.
    transformer = tiny.build_components()["transformer"]
    source = _state_hash(transformer)
    stamp = path.with_name(path.name + ".source")
    if not (path.exists() and stamp.is_file() and stamp.read_text().strip() == source):
        path.parent.mkdir(parents=True, exist_ok=True)
        gguf_files.write_gguf(transformer.state_dict(), path, qtype)
        write_text_atomic(stamp, source + "\n")
    return path


def _state_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def load_pipeline(
    model: str = defaults.MODEL_ID,
    quant: str = "bf16",
    gguf: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load the whole pipeline onto `device`. `gguf` (a local file) overrides `quant`."""
    from diffusers import ZImagePipeline

    if quant not in defaults.QUANTS:
        raise InvalidParams(f"quant must be one of {', '.join(defaults.QUANTS)}, got {quant!r}")
    device = resolve_device(device)
    gguf_path = Path(gguf).expanduser() if gguf else None

    if model == defaults.TINY_MODEL:
        # The tiny model computes in float32: exact on a CPU, and cheap anywhere.
        dtype = dtype or torch.float32
        comps = tiny.build_components(dtype)
        weights_hash = None
        if gguf_path is None and quant != "bf16":
            gguf_path = _tiny_gguf(quant)
        if gguf_path is not None:
            with _config_dir(comps["transformer"]) as cfg:
                comps["transformer"] = gguf_files.load_transformer(gguf_path, cfg, None, dtype)
            weights_hash = cached_sha256(gguf_path)
        else:
            weights_hash = _state_hash(comps["transformer"])
        pipe = ZImagePipeline(**comps)
        info = ModelInfo(
            model=model, source="tiny", quant=recorded_quant(quant, gguf, dtype),
            label=tiny.LABEL, weights_file=str(gguf_path) if gguf_path else None,
            weights_sha256=weights_hash, dtype=str(dtype).removeprefix("torch."),
        )
        return LoadedModel(pipe.to(device), info)

    dtype = dtype or torch.bfloat16
    local = Path(model).expanduser()
    is_local = local.is_dir()
    if not is_local and (model.startswith((".", "/", "~")) or model.count("/") != 1):
        raise WeightsNotFound(f"model folder {model} does not exist (and it is not a hub id like {defaults.MODEL_ID})")
    source = "local" if is_local else "hub"
    revision = None
    if is_local:
        if not (local / "model_index.json").is_file():
            raise WeightsNotFound(f"{local} is not a diffusers model folder (no model_index.json in it)")
        _check_folder(local)
    weights_file = weights_hash = None
    kwargs: dict = {}
    wants_gguf = gguf_path is not None or quant != "bf16"
    if not is_local:
        # The base repo first, and without network round trips when it is cached: a cached snapshot loads
        # offline (its revision is recorded), a missing one fails at once naming everything still needed.
        gguf_file = (defaults.GGUF_REPO, defaults.GGUF_FILES[quant]) if wants_gguf and gguf_path is None else None
        if _snapshot(model) is not None:
            kwargs["local_files_only"] = True
        elif not _hub_reachable(model):
            raise WeightsNotFound(_missing_base_message(model, gguf_file, gguf_path))
    if wants_gguf:
        if gguf_path is None:
            gguf_path = _hub_file(defaults.GGUF_REPO, defaults.GGUF_FILES[quant])
        config = str(local) if is_local else model
        try:
            kwargs["transformer"] = gguf_files.load_transformer(gguf_path, config, "transformer", dtype,
                                                                local_files_only=kwargs.get("local_files_only", False))
        except OSError as exc:
            raise WeightsNotFound(_missing_weights_message("the transformer config", model, "transformer/config.json")) from exc
        weights_file, weights_hash = str(gguf_path), cached_sha256(gguf_path)
    try:
        pipe = ZImagePipeline.from_pretrained(str(local) if is_local else model, dtype=dtype, **kwargs)
    except OSError as exc:
        snap = None if is_local else _snapshot(model)
        if snap is not None:
            _check_folder(snap)
        if is_local or snap is not None:
            raise CorruptWeights(f"could not load the pipeline from {snap or local}: {exc}") from None
        raise WeightsNotFound(_missing_base_message(model, None, None)) from None
    if not is_local:
        snap = _snapshot(model)
        revision = snap.name if snap else None
    info = ModelInfo(
        model=str(local.resolve()) if is_local else model, source=source,
        quant=recorded_quant(quant, gguf, dtype),
        label=f"Z-Image-Turbo ({model})", revision=revision, weights_file=weights_file,
        weights_sha256=weights_hash, dtype=str(dtype).removeprefix("torch."),
    )
    return LoadedModel(pipe.to(device), info)


class _config_dir:
    """A temp folder holding a model's config.json, for from_single_file(config=...)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self) -> str:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="zturbo-config-")
        self.model.save_config(self._tmp.name)
        return self._tmp.name

    def __exit__(self, *exc):
        self._tmp.cleanup()
