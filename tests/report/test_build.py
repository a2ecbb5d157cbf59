"""The report builder on a tiny sweep: files, layout, failures, the reproduce command, offline."""

import json
import re
import shlex
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from zturbo import defaults
from zturbo.cli import main
from zturbo.report.build import generate_command
from zturbo.report.sweepdir import load

from report_sweep import FAILED_ID, SPEC


def test_report_files_and_thumbnails(built_report, tiny_sweep):
    assert built_report == tiny_sweep / "report" / "index.html"
    out = built_report.parent
    assert (out / "assets" / "report.js").is_file() and (out / "assets" / "report.css").is_file()
    thumbs = sorted((out / "thumbs").rglob("*.webp")) or sorted((out / "thumbs").rglob("*.jpg"))
    assert len(thumbs) == sum(len(rows) for *_, rows in SPEC.values()) - 1  # every image but the failed one
    assert all(max(Image.open(t).size) <= defaults.REPORT_THUMB_PX for t in thumbs)


def test_every_experiment_is_laid_out_with_a_number_under_each_frame(built_report):
    html = built_report.read_text()
    for name in SPEC:
        assert f'id="exp-{name}"' in html
    # seeds as a portrait row and a landscape row; the grid as an X/Y table
    assert "Portrait · 32×48" in html and "Landscape · 48×32" in html
    assert html.count('class="xy-grid"') == 1
    figures = re.findall(r'<figure class="frame[^"]*" data-id="([^"]+)".*?<span class="num">([^<]*)</span>', html)
    assert len(figures) == sum(len(rows) for *_, rows in SPEC.values())
    assert all(num for _, num in figures), [f for f in figures if not f[1]]
    assert "SSIM" in dict(figures)["steps-1"] and "contrast" in dict(figures)["guidance-1.0"]
    assert "drift" in dict(figures)["quant-q2"] and "dup" in dict(figures)["resolution-64x32"]


def test_aspect_frames_have_true_proportions_and_equal_area(built_report):
    html = built_report.read_text()
    sizes = {}
    for item_id in ("aspect-2:3", "aspect-1:1", "aspect-16:9"):
        m = re.search(rf'data-id="{re.escape(item_id)}" [^>]*><img [^>]*width="(\d+)" height="(\d+)"', html)
        sizes[item_id] = (int(m.group(1)), int(m.group(2)))
    areas = [w * h for w, h in sizes.values()]
    assert max(areas) / min(areas) < 1.03
    assert sizes["aspect-16:9"][0] / sizes["aspect-16:9"][1] == pytest.approx(2.0, rel=0.03)  # 64x32 on disk
    assert sizes["aspect-2:3"][0] / sizes["aspect-2:3"][1] == pytest.approx(32 / 48, rel=0.03)
    small = re.search(r'data-id="resolution-32x16" [^>]*><img [^>]*width="(\d+)"', html)
    large = re.search(r'data-id="resolution-64x32" [^>]*><img [^>]*width="(\d+)"', html)
    assert int(large.group(1)) == pytest.approx(2 * int(small.group(1)), abs=1)  # area follows pixel count


def test_failed_item_is_shown_as_failed_and_stale_records_lose(built_report, tiny_sweep):
    html = built_report.read_text()
    assert re.search(rf'<figure class="frame failed" data-id="{re.escape(FAILED_ID)}"', html)
    assert "out of GPU memory" in html
    sweep = load(tiny_sweep)
    assert sweep.items["steps-1"].ok  # a later ok record beats the stale failure in the rank shard
    assert "1 failed" in html


def test_trace_and_learned_metrics_are_reported(built_report):
    html = built_report.read_text()
    assert 'href="../trace/trace.html"' in html
    assert "LPIPS" in html and "CLIP score" in html and "never downloaded" in html


def test_page_needs_no_network(built_report):
    out = built_report.parent
    for path in [built_report, out / "assets" / "report.js", out / "assets" / "report.css"]:
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
        assert "@import" not in text and "url(http" not in text


def test_command_in_the_lightbox_reproduces_the_image(built_report, tiny_sweep, tmp_path, capsys):
    html = built_report.read_text()
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    cmd = json.loads(blob)["items"]["steps-2"]["command"]
    argv = shlex.split(cmd)
    assert argv[:2] == ["zturbo", "generate"] and "--seed" in argv and "--size" in argv and "--rng" in argv
    target = tmp_path / "again.png"
    assert main(argv[1:] + ["-o", str(target), "-q"]) == 0
    again = np.asarray(Image.open(target).convert("RGB"))
    original = np.asarray(Image.open(tiny_sweep / "steps" / "steps-2.png").convert("RGB"))
    assert np.array_equal(again, original)


def test_command_quotes_the_prompt_and_keeps_the_negative_prompt(tiny_sweep):
    item = load(tiny_sweep).items["guidance-1.0"]
    item.params = dict(item.params, prompt="it's a 'robot'; rm -rf /", negative_prompt="blurry")
    argv = shlex.split(generate_command(item))
    assert argv[2] == "it's a 'robot'; rm -rf /"
    assert argv[argv.index("--negative-prompt") + 1] == "blurry"
    assert argv[argv.index("--guidance") + 1] == "1"


def test_cli_report_and_its_errors(tiny_sweep, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert main(["report", str(tiny_sweep), "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert (out / "index.html").is_file()
    # -o outside the sweep: the originals are still linked relatively (the pair can be moved together)
    html = (out / "index.html").read_text()
    fulls = re.findall(r'"full": "([^"]+)"', html)
    assert fulls and not any(f.startswith(("/", "file:")) for f in fulls)
    assert all((out / unquote(f)).resolve().is_file() for f in fulls)
    assert main(["report", str(tmp_path / "nope")]) != 0
    assert "no such folder" in capsys.readouterr().err
    assert main(["report", str(tiny_sweep / "plan.json")]) != 0
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) != 0
    assert "plan.json" in capsys.readouterr().err


def test_open_without_a_browser_says_where_the_page_is(tiny_sweep, tmp_path, capsys, monkeypatch):
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda uri: False)
    out = tmp_path / "opened"
    assert main(["report", str(tiny_sweep), "--out", str(out), "-q", "--open"]) == 0
    err = capsys.readouterr().err
    assert f"no browser found to open it here: open {(out / 'index.html').resolve().as_uri()}" in err


def test_item_not_yet_made_is_shown_as_pending(tiny_sweep, tmp_path):
    import shutil

    from zturbo.report import build_report

    copy = tmp_path / "partial"
    shutil.copytree(tiny_sweep, copy, ignore=shutil.ignore_patterns("report"))
    keep = [line for line in (copy / "manifest.jsonl").read_text().splitlines() if '"steps-3"' not in line]
    (copy / "manifest.jsonl").write_text("\n".join(keep) + "\n")
    html = build_report(copy).read_text()
    assert re.search(r'<figure class="frame missing" data-id="steps-3"', html)
    assert "not generated" in html


def test_learned_metrics_join_the_captions_only_when_their_weights_are_there(tiny_sweep, tmp_path, monkeypatch):
    from zturbo.report import build_report, learned

    # no weights can be on disk here: fake the two models to check what the page does when they are
    monkeypatch.setattr(learned, "status", lambda: [learned.LearnedMetric("LPIPS", True, "weights found: x"),
                                                    learned.LearnedMetric("CLIP score", True, "weights found: y")])
    monkeypatch.setattr(learned, "clip_scores", lambda images, prompts: {i: 31.0 for i in images})

    def broken(pairs):
        raise OSError("truncated checkpoint")

    monkeypatch.setattr(learned, "lpips_distances", broken)
    html = build_report(tiny_sweep, out=tmp_path / "r").read_text()
    assert "CLIP 31.0" in html and "mean 31.00 over 21 images" in html
    assert "unavailable: OSError: truncated checkpoint" in html  # reported, and the report still built


def test_an_upscaled_frame_reproduces_as_generate_then_upscale(tiny_sweep):
    item = load(tiny_sweep).items["steps-2"]
    item.upscale = {"model": "/models/2x SPAN.safetensors", "size": [64, 64]}
    cmd = generate_command(item)
    first, second = cmd.split(" && ")
    assert shlex.split(first)[-2:] == ["-o", "steps-2_base.png"]
    assert shlex.split(second) == ["zturbo", "upscale", "steps-2_base.png", "--model", "/models/2x SPAN.safetensors",
                                   "--scale", "2"]


def test_a_controlnet_frame_reproduces_with_its_controlnet_and_control_image(tiny_sweep):
    item = load(tiny_sweep).items["steps-2"]
    item.params = dict(item.params, control_image="/in/edges.png", control_scale=0.8, control_type="canny")
    item.record = dict(item.record, controlnet={"name": "u.safetensors", "path": "/models/u.safetensors",
                                                "sha256": "0" * 64, "variant": "2.1"})
    argv = shlex.split(generate_command(item))
    i = argv.index("--controlnet")
    assert argv[i:i + 8] == ["--controlnet", "/models/u.safetensors", "--control", "/in/edges.png",
                             "--control-scale", "0.8", "--control-type", "canny"]


def test_a_three_axis_grid_is_x_by_y_tables_in_z_sections():
    from zturbo.report.page import layout_html
    from zturbo.report.sweepdir import Experiment, Item

    axes = [{"key": "steps", "values": [4, 8]}, {"key": "guidance", "values": [0.0, 1.0]}, {"key": "seed", "values": [1, 2]}]
    items = [Item(id=f"s{s}g{g}z{z}", experiment="grid", file="", params={"width": 32, "height": 32}, quant="bf16",
                  axes={"steps": s, "guidance": g, "seed": z}, row=None, status="ok")
             for z in (1, 2) for g in (0.0, 1.0) for s in (4, 8)]
    data = {it.id: {"thumb": f"t/{it.id}.webp", "w": 32, "h": 32, "views": {"grid": {"label": it.id}}} for it in items}
    html = layout_html(Experiment("grid", "g", "steps,guidance,seed", "grid", axes, items), data)
    sections = html.split('<h4 class="row-title">')[1:]
    assert [s.split("<")[0] for s in sections] == ["seed = 1", "seed = 2"]
    rows = sections[1].split("<tr>")[1:]  # seed 2: a header row, then guidance 0 and 1
    assert "steps →" in rows[0] and ">4<" in rows[0] and ">8<" in rows[0]
    assert re.findall(r'data-id="([^"]+)"', rows[2])[::2] == ["s4g1.0z2", "s8g1.0z2"]
