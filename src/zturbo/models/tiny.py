"""The tiny model: real Z-Image classes at toy sizes, deterministic random weights, offline tokenizer.

It produces noise by design. It exists so that every code path (loading, GGUF, generation,
metadata, CLI) runs for real on a CPU with no download. The layout matches the real model where
it matters to callers: 16 latent channels, VAE factor 8, patch 2, so sizes follow the same
16-pixel grid; the text encoder is a Qwen3Model whose hidden size equals the DiT's cap_feat_dim.
"""

from __future__ import annotations

import functools

import torch

LABEL = "zturbo-tiny (random weights: the image is noise by design)"
WEIGHTS_SEED = 0

# Real chat-template behaviour of Qwen3 that the pipeline relies on: a user turn, then the
# assistant header; enable_thinking=False would add an empty think block (the pipeline passes True).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
_CORPUS = [
    "A sleek black helmeted robot shown in a three-quarter profile against a solid red background.",
    "Subject: a highly detailed mechanical head with exposed wiring and internal gears.",
    "Clothing: a high-collared dark tactical jacket with an illuminated red logo that reads Libel.",
    "Lighting: dramatic spotlight, deep shadows, high contrast between reflective surfaces.",
    "a photo of a cat, a dog, a mountain lake at sunrise, a city street at night, portrait, poster",
]

TRANSFORMER_CONFIG = dict(
    # head_dim 128 and RoPE axes [32, 48, 48] as in the real model; width 256 so that the DiT's rows
    # fill whole 256-weight K-quant super-blocks (tiny --quant q4/q2 are then real Q4_K/Q2_K files)
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=256, n_layers=2,
    n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32, axes_dims=[32, 48, 48],
    axes_lens=[1536, 512, 512],
)
TEXT_ENCODER_CONFIG = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=8, max_position_embeddings=1024,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16, 16, 16),
    layers_per_block=1, norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False,
)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return tok.to_str()


def build_tokenizer():
    """A byte-level BPE tokenizer (any text encodes) wrapped as the Qwen2 tokenizer class, offline."""
    from tokenizers import Tokenizer
    from transformers import Qwen2TokenizerFast

    tok = Qwen2TokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None,
        model_max_length=131072,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_components(dtype: torch.dtype = torch.float32) -> dict:
    """The five pipeline components, identical on every call (weights from a fixed seed)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHTS_SEED)
        transformer = ZImageTransformer2DModel(**TRANSFORMER_CONFIG)
        text_encoder = Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), **TEXT_ENCODER_CONFIG))
        vae = AutoencoderKL(**VAE_CONFIG)
    return dict(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG),
        vae=vae.to(dtype).eval(),
        text_encoder=text_encoder.to(dtype).eval(),
        tokenizer=tokenizer,
        transformer=transformer.to(dtype).eval(),
    )


def build_pipeline(dtype: torch.dtype = torch.float32):
    from diffusers import ZImagePipeline

    return ZImagePipeline(**build_components(dtype))
