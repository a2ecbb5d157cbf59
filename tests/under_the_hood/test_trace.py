"""zturbo trace on the tiny model: every stage present, its numbers consistent with the loaded config."""

import json
import re

import pytest
import torch

from zturbo import GenerationParams
from zturbo.cli import main
from zturbo.trace import _x0_estimates, run_trace, stage
from zturbo.trace_report import render_table, write_trace

P = GenerationParams(prompt="a robot on a red background", seed=5, width=64, height=96, steps=3, rng="cpu")


@pytest.fixture(scope="module")
def traced(tiny_engine):
    return run_trace(tiny_engine, P)


def test_all_eight_stages_in_order(traced):
    trace, previews, image = traced
    assert [s["stage"] for s in trace["stages"]] == list(range(1, 9))
    assert image.size == (64, 96) and len(previews) == P.steps
    table = render_table(trace)
    for s in trace["stages"]:
        assert f"[{s['stage']}] {s['title']}" in table


def test_tokenization_and_text_encoder(traced, tiny_engine):
    trace = traced[0]
    tok, enc = stage(trace, 1), stage(trace, 2)
    ids = tiny_engine.pipe.tokenizer(tiny_engine.chat_text(P.prompt)).input_ids
    assert tok["chat-templated text"].startswith("<|im_start|>user\n" + P.prompt)
    assert tok["tokens after the template"] == len(ids) == tok["tokens the DiT received"]
    assert not tok["truncated"] and tok["text cut"] == ""
    n = tiny_engine.pipe.text_encoder.config.num_hidden_layers
    # diffusers feeds hidden_states[-2]: the output of the second-to-last layer
    assert enc["hidden state fed to the DiT"].startswith("hidden_states[-2]")
    assert enc["layer"] == f"output of layer {n - 1} of {n}" and enc["hidden states returned"] == n + 1
    assert enc["embedding shape"] == [len(ids), tiny_engine.pipe.text_encoder.config.hidden_size]


def test_noise_is_the_seeded_draw(traced):
    from diffusers.utils.torch_utils import randn_tensor

    noise = stage(traced[0], 3)
    assert noise["shape"] == [1, 16, 12, 8] and noise["generator device"] == "cpu"
    ref = randn_tensor((1, 16, 12, 8), generator=torch.Generator("cpu").manual_seed(P.seed), dtype=torch.float32)
    assert noise["mean"] == pytest.approx(ref.mean().item(), abs=1e-4)
    assert noise["std"] == pytest.approx(ref.std().item(), abs=1e-4)


def test_latent_patchify_sequence_and_rope(traced, tiny_engine):
    trace = traced[0]
    lat, seq, rope = stage(trace, 4), stage(trace, 5), stage(trace, 6)
    cfg = tiny_engine.pipe.transformer.config
    assert lat["VAE downscale factor"] == 8 and lat["patch size"] == cfg.all_patch_size[0] == 2
    assert lat["size multiple"] == 16 and lat["image-token grid (h x w)"] == [6, 4] and lat["image tokens"] == 24
    assert lat["grid x patch x factor"] == [96, 64]
    n_cap = stage(trace, 1)["tokens the DiT received"]
    multiple = seq["padding multiple (SEQ_MULTI_OF)"]
    assert multiple == 32
    assert seq["image tokens + padding"] == [24, 8] and seq["caption tokens + padding"] == [n_cap, -n_cap % 32]
    assert seq["sequence length at block 1"] == 32 + n_cap + (-n_cap % 32)
    assert seq["order"] == "image tokens, then caption tokens"  # diffusers' basic (non-omni) mode
    assert seq["width (dim)"] == cfg.dim and seq["main layers"] == cfg.n_layers and seq["attention heads"] == cfg.n_heads
    assert rope["axes dims (t, h, w)"] == list(cfg.axes_dims)
    # caption tokens walk the temporal axis from 1; image tokens sit past the padded caption on h, w
    assert rope["caption range per axis"] == [[1, n_cap], [0, 0], [0, 0]]
    t_img = n_cap + (-n_cap % 32) + 1
    assert rope["image range per axis"] == [[t_img, t_img], [0, 5], [0, 3]]


def test_rope_pattern_check():
    from zturbo.trace import rope_separates

    assert rope_separates([[1, 30], [0, 0], [0, 0]], [[33, 33], [0, 5], [0, 3]])
    assert not rope_separates([[1, 30], [0, 4], [0, 0]], [[33, 33], [0, 5], [0, 3]])  # text on a spatial axis
    assert not rope_separates([[1, 30], [0, 0], [0, 0]], [[33, 40], [0, 5], [0, 3]])  # image moves in t


def test_denoising_counts_passes_and_follows_the_shift(traced, tiny_engine):
    d = stage(traced[0], 7)
    assert d["transformer passes (counted)"] == P.steps == len(d["seconds per pass"]) == len(d["timesteps"])
    assert d["model evaluations (counted)"] == P.steps  # guidance 0: one evaluation per pass
    shift = tiny_engine.pipe.scheduler.config.shift
    shifted = [shift * s / (1 + (shift - 1) * s) for s in d["sigmas asked (before shift)"]]
    assert d["sigmas (shifted, then the end)"] == pytest.approx(shifted + [0.0], abs=1e-4)
    assert d["DiT timestep input (1 - sigma)"] == pytest.approx([1 - s for s in shifted], abs=1e-4)


def test_vae_decode_applies_scaling_and_shift(traced):
    dec = stage(traced[0], 8)
    assert dec["max |decoder input - z|"] < 1e-5
    assert dec["decoder output shape"] == [1, 3, 96, 64] and dec["image size"] == [64, 96]
    assert dec["upscale (output / input side)"] == stage(traced[0], 4)["VAE downscale factor"] == 8


def test_probe_leaves_nothing_behind(traced, tiny_engine):
    pipe = tiny_engine.pipe
    assert "prepare_latents" not in vars(pipe) and "set_timesteps" not in vars(pipe.scheduler)
    assert "patchify_and_embed" not in vars(pipe.transformer) and "_build_unified_sequence" not in vars(pipe.transformer)
    assert not pipe.text_encoder._forward_hooks and not pipe.vae.decoder._forward_pre_hooks


def test_x0_estimate_is_the_models_clean_prediction(tiny_engine):
    """x0 from the scheduler's Euler steps equals x_t + sigma * (DiT output): the pipeline negates it."""
    seen, latents, noise = [], [], []
    tr = tiny_engine.pipe.transformer

    def hook(module, args, output):
        x, t = args[0][0].squeeze(1).float(), float(args[1][0])
        seen.append(x + (1 - t) * output[0][0].squeeze(1).float())  # sigma = 1 - DiT timestep input

    h = tr.register_forward_hook(hook)
    try:
        params = P.replace(steps=4)
        tiny_engine.generate(params, on_step=lambda s, n, lat: latents.append(lat[0].clone()))
    finally:
        h.remove()
    noise = torch.randn((16, 12, 8), generator=torch.Generator("cpu").manual_seed(P.seed))
    sigmas = tiny_engine.pipe.scheduler.sigmas.tolist()
    ours = _x0_estimates(noise, latents, sigmas)
    for a, b in zip(ours, seen):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours[-1], latents[-1])  # the last pass lands on its own estimate


def test_truncation_is_reported_with_the_cut_text(tiny_engine):
    prompt = "a robot " * 300 + "THE END"
    tok = stage(run_trace(tiny_engine, P.replace(prompt=prompt, steps=1, width=32, height=32))[0], 1)
    assert tok["truncated"] and tok["tokens the DiT received"] == 512
    assert tok["tokens cut"] == tok["tokens after the template"] - 512 > 0
    assert "THE END" in tok["text cut"]


def test_guidance_doubles_the_evaluations(tiny_engine):
    d = stage(run_trace(tiny_engine, P.replace(steps=2, guidance=2.0, width=32, height=32))[0], 7)
    assert d["transformer passes (counted)"] == 2 and d["model evaluations (counted)"] == 4


def test_out_dir_files(traced, tmp_path):
    from PIL import Image

    paths = write_trace(tmp_path / "t", *traced)
    doc = json.loads(paths["json"].read_text())
    assert len(doc["stages"]) == 8 and doc["files"]["filmstrip"] == "filmstrip.png"
    strip = Image.open(paths["filmstrip"])
    assert strip.width > P.steps * strip.height * 0.5  # one frame per pass, side by side
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and not re.search(r"(src|href)=['\"]?https?:", page)
    assert all(f"{s['stage']}. {s['title']}" in page for s in doc["stages"])


def test_cli_json_and_bad_size(capsys):
    assert main(["trace", "a cat", "--model", "tiny", "--device", "cpu", "--size", "32x32", "--steps", "2",
                 "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert stage(doc, 7)["transformer passes (counted)"] == 2
    assert main(["trace", "--model", "tiny", "--device", "cpu", "--size", "30x32", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "multiple of 16" in err and "Traceback" not in err
