"""zturbo sweep --vary lora=none,a.safetensors,b.safetensors:0.8: LoRA files as a sweep axis. One model load
per value (its images made together), records with each LoRA's name, sha256 and scale, resume that skips
what is done and refuses another file at the same path, and bad combinations as one line, exit 2."""

import json

import numpy as np
import pytest
from PIL import Image

from zturbo.cli import main
from zturbo.hashing import sha256_file

from lora_files import write_lora

TINY = ["--model", "tiny", "--device", "cpu", "--size", "64x64", "--seed", "7", "--steps", "2", "--rng", "cpu",
        "--prompt", "a fox"]


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def records(folder):
    return {r["file"]: r for r in map(json.loads, (folder / "manifest.jsonl").read_text().splitlines())}


@pytest.fixture
def files(tmp_path):
    a, b = tmp_path / "style.safetensors", tmp_path / "ink.safetensors"
    write_lora(a, "kohya", seed=11, alpha=400.0)  # strong: the tiny model's pixels must move
    write_lora(b, "diffusers", seed=12, alpha=400.0)
    return a, b


@pytest.fixture
def loads(monkeypatch):
    from zturbo.cli import sweep as cli_sweep

    seen, load = [], cli_sweep.load_engine
    monkeypatch.setattr(cli_sweep, "load_engine", lambda o, q: seen.append(o.loras) or load(o, q))
    return seen


def test_a_lora_axis_makes_one_load_per_file_and_records_name_sha_and_scale(tmp_path, files, loads, capsys):
    a, b = files
    out = tmp_path / "s"
    args = ["sweep", "--vary", f"lora=none,{a},{b}:0.5", "--vary", "guidance=0,0.5", "--out", str(out), *TINY]
    assert main(args) == 0
    assert loads == [(), ((str(a), 1.0),), ((str(b), 0.5),)]  # one load each, its two guidances together
    assert "6 to make in 3 model loads (one per precision and LoRA)" in capsys.readouterr().err
    names = sorted(p.name for p in (out / "grid").glob("*.png"))
    assert names == sorted(f"LORA-{n}_G{g}.png" for n in ("none", "style", "ink-0.5") for g in ("0.0", "0.5"))
    recs = records(out)
    assert recs["grid/LORA-none_G0.0.png"]["loras"] == []
    (ra,) = recs["grid/LORA-style_G0.5.png"]["loras"]
    (rb,) = recs["grid/LORA-ink-0.5_G0.0.png"]["loras"]
    assert (ra["name"], ra["sha256"], ra["scale"]) == ("style.safetensors", sha256_file(a), 1.0)
    assert (rb["name"], rb["sha256"], rb["scale"]) == ("ink.safetensors", sha256_file(b), 0.5)
    imgs = [pixels(out / "grid" / f"LORA-{n}_G0.0.png") for n in ("none", "style", "ink-0.5")]
    assert not np.array_equal(imgs[0], imgs[1]) and not np.array_equal(imgs[1], imgs[2])
    plain = tmp_path / "plain"  # none is the base model
    assert main(["sweep", "--vary", "guidance=0", "--out", str(plain), *TINY]) == 0
    assert np.array_equal(pixels(plain / "grid" / "G0.0.png"), imgs[0])
    plan = json.loads((out / "plan.json").read_text())
    assert plan["items"]["grid/LORA-ink-0.5_G0.0"]["loras"] == [[str(b), 0.5]]
    from zturbo.report import build_report

    html = build_report(out).read_text()  # columns and frames named by the LoRA's file name, not its path
    for name in ("no LoRA", "style.safetensors", "ink.safetensors ×0.5"):
        assert f'<th scope="col">{name}</th>' in html
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])["items"]
    assert f"--lora {b}:0.5" in data["grid/LORA-ink-0.5_G0.0"]["command"]  # the lightbox's line makes it again
    assert "--lora" not in data["grid/LORA-none_G0.0"]["command"]
    assert 'alt="style.safetensors · guidance 0.5"' in html and str(tmp_path) + "/style" not in html.split("<script")[0]

    capsys.readouterr()
    loads.clear()
    assert main(args) == 0  # resume: everything done, nothing loaded
    assert "6 already done, 0 to make" in capsys.readouterr().err and loads == []

    write_lora(a, "kohya", seed=99, alpha=400.0)  # another file at the same path
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "LORA-style" in err and "another file at the same path" in err and "--overwrite" in err
    assert loads == []
    assert main([*args, "--overwrite"]) == 0
    assert loads == [((str(a), 1.0),)]  # only that file's images again
    assert records(out)["grid/LORA-style_G0.0.png"]["loras"][0]["sha256"] == sha256_file(a)


def test_dry_run_and_toml_count_one_load_per_lora(tmp_path, files, capsys):
    a, b = files
    assert main(["sweep", "--vary", f"lora=none,{a},{b}", "--vary", "guidance=0,1", "--dry-run",
                 "--out", str(tmp_path / "s"), *TINY]) == 0
    assert "6 images" in (text := capsys.readouterr().out) and "3 model loads (one per precision and LoRA)" in text
    exp = tmp_path / "fox.toml"
    exp.write_text(f'prompt = "a fox"\n[axes]\nlora = ["none", "{a}:0.7"]\n')
    assert main(["sweep", "--file", str(exp), "--dry-run", "--out", str(tmp_path / "t"), *TINY[:-2]]) == 0
    assert "2 model loads" in capsys.readouterr().out
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def test_a_lora_axis_with_a_lora_scale_axis_runs_every_file_at_every_scale(tmp_path, files, loads, capsys):
    a, b = files
    out = tmp_path / "s"
    assert main(["sweep", "--vary", f"lora={a},{b}", "--vary", "lora_scale=0.5,1", "--out", str(out), *TINY]) == 0
    assert sorted(loads) == sorted(((str(f), s),) for f in (a, b) for s in (0.5, 1.0))
    recs = records(out)
    assert recs["grid/LORA-ink_L0.5.png"]["loras"][0]["scale"] == 0.5
    assert recs["grid/LORA-ink_L0.5.png"]["axes"] == {"lora": str(b), "lora_scale": 0.5}


@pytest.mark.parametrize("vary, extra, says", [
    ("lora=none,{a}", ["--vary", "lora_scale=0,1"], "lora=none with a lora_scale axis"),
    ("lora={a}:0.5,{b}", ["--vary", "lora_scale=0,1"], "without :SCALE"),
    ("lora=none,{a}", ["--lora", "{b}"], "--lora ink.safetensors and a lora axis"),
    ("lora=none,{tmp}/gone.safetensors", [], "gone.safetensors: no such file"),
    ("lora=none,{tmp}/x.ckpt", [], "pickled .ckpt files are refused"),
    ("lora={a},{a}:1", [], "the same file at the same scale"),
    ("lora={a},{tmp}/sub/style.safetensors", [], "would both be named LORA-style"),
    ("lora={a}:abc", [], "scale 'abc' is not a number"),
])
def test_bad_lora_axes_exit_2_and_write_nothing(tmp_path, files, capsys, vary, extra, says):
    a, b = files
    (tmp_path / "sub").mkdir()
    write_lora(tmp_path / "sub" / "style.safetensors", "kohya", seed=3)
    fill = lambda t: t.format(a=a, b=b, tmp=tmp_path)  # noqa: E731
    out = tmp_path / "s"
    assert main(["sweep", "--vary", fill(vary), *map(fill, extra), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not out.exists()
