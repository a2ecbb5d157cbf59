"""The published Z-Image-Turbo configs (Tongyi-MAI/Z-Image-Turbo on the hub: transformer/, text_encoder/,
vae/ config.json). One place for them: `zturbo verify` builds weightless
reference models from them, and the benchmarks build random-weight models of the real architecture
(which time and use memory exactly like the checkpoint).
"""

from __future__ import annotations

TRANSFORMER = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2,
    n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[32, 48, 48],
    axes_lens=[1536, 512, 512],  # diffusers' constructor default is [1024, 512, 512]: always pass it
)
TEXT_ENCODER = dict(  # Qwen3-4B
    hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
VAE = dict(  # the Flux VAE
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
    layers_per_block=2, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
)
SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)

CONFIGS = {"transformer": TRANSFORMER, "text_encoder": TEXT_ENCODER, "vae": VAE}
