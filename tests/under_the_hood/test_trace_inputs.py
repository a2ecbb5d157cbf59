"""zturbo trace with an input image: stage 3i shows the image VAE-encoded, noised to the strength's first
sigma (the passes before it skipped, counted), and for inpainting the mask at latent resolution."""

import json

import numpy as np
import pytest
from PIL import Image

from zturbo import GenerationParams
from zturbo.cli import main
from zturbo.trace import INPUT_STAGE, run_trace, stage


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trace-inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)).save(d / "photo.png")
    m = np.zeros((96, 64), np.uint8)
    m[:, :16] = 255  # white: repaint the left quarter
    Image.fromarray(m).save(d / "mask.png")
    return d


def _params(files, **kw):
    return GenerationParams(prompt="a fox", seed=3, steps=4, rng="cpu", image=str(files / "photo.png"), **kw)


def test_image_to_image_stage_numbers(files, tiny_engine):
    pictures = {}
    params = _params(files, strength=0.5)
    trace, previews, image = run_trace(tiny_engine, params, pictures)
    assert [s["stage"] for s in trace["stages"]] == [1, 2, 3, INPUT_STAGE, 4, 5, 6, 7, 8]
    facts = stage(trace, INPUT_STAGE)
    skipped = int(4 - 4 * 0.5)  # diffusers' get_timesteps: t_start = int(steps - strength x steps)
    assert facts["passes skipped (the schedule's first)"] == skipped
    assert facts["passes run (counted)"] == 4 - skipped == len(previews) == stage(trace, 7)["transformer passes (counted)"]
    sigma = float(tiny_engine.pipe.scheduler.sigmas[skipped])  # the scheduler's sigma at the start index
    assert facts["first sigma (sigmas[skipped])"] == pytest.approx(sigma, abs=1e-4)
    assert facts["sigma measured from the tensors"] == pytest.approx(sigma, abs=1e-4)  # read off the latents
    assert facts["max |initial latents - formula|"] < 1e-5
    assert facts["input latents shape"] == [1, 16, 12, 8] and facts["mode"] == "image-to-image"
    assert facts["pipeline"] == "ZImageImg2ImgPipeline" and stage(trace, 3)["generator device"] == "cpu"
    assert [c for c, _ in pictures[INPUT_STAGE]] == [
        "input image", "input latents, decoded (VAE round trip)", f"initial latents at sigma {sigma:.3f}, decoded"]
    assert all(im.size == (64, 96) for _, im in pictures[INPUT_STAGE]) and image.size == (64, 96)


def test_inpainting_shows_the_mask_at_latent_resolution(files, tiny_engine):
    pictures = {}
    trace, _, _ = run_trace(tiny_engine, _params(files, mask=str(files / "mask.png")), pictures)
    facts = stage(trace, INPUT_STAGE)
    assert facts["mode"] == "inpainting" and facts["passes skipped (the schedule's first)"] == 0  # strength 1
    assert facts["first sigma (sigmas[skipped])"] == pytest.approx(1.0)
    assert facts["mask at latent resolution (h x w)"] == [12, 8]
    assert facts["repainted fraction (mask > 0.5)"] == pytest.approx(0.25)
    caption, mask = pictures[INPUT_STAGE][-1]
    assert caption == "mask at latent resolution" and mask.size == (8, 12)
    assert (np.asarray(mask)[:, :2] == 255).all() and (np.asarray(mask)[:, 2:] == 0).all()


def test_cli_trace_with_an_image_writes_the_stage_and_its_pictures(files, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["trace", "a fox", "--model", "tiny", "--rng", "cpu", "--steps", "4", "--image",
                 str(files / "photo.png"), "--strength", "0.5", "--out", str(out), "--json", "-q"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["params"]["width"] == 64 and stage(trace, INPUT_STAGE)["passes skipped (the schedule's first)"] == 2
    page = (out / "trace.html").read_text()
    assert "id=stage-3i" in page and "alt='input latents, decoded (VAE round trip)'" in page
    sig = stage(trace, 7)["sigmas (shifted, then the end)"]
    assert f"pass 1 · σ {sig[2]:.3f}" in page  # the filmstrip counts from the first pass that ran


def test_strength_without_an_image_is_one_line_exit_2(tmp_path, capsys):
    assert main(["trace", "--model", "tiny", "--size", "64x64", "--strength", "0.5", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "image" in err and not (tmp_path / "t").exists()
