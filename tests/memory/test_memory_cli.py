"""--memory / --vram-budget on the command line, and zturbo doctor (CPU: no GPU, no weights)."""

import json

import pytest

from zturbo.cli import main


def test_memory_flags_are_checked(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "a fox", "--model", "tiny", "--memory", "half"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    rc = main(["generate", "a fox", "--model", "tiny", "--vram-budget", "0", "-o", str(tmp_path / "x.png")])
    assert rc == 2 and "--vram-budget must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_memory_on_cpu_is_a_noop_with_a_note(capsys, tmp_path):
    out = tmp_path / "fox.png"
    rc = main(["generate", "a fox", "--model", "tiny", "--size", "64x64", "--memory", "group-offload",
               "--vram-budget", "4", "-o", str(out), "--seed", "1"])
    assert rc == 0 and out.exists()
    assert "memory: no GPU" in capsys.readouterr().err


def test_doctor_reports_on_a_cpu_machine(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    for part in ("GPU", "no CUDA GPU", "memory auto, 1024x1024", "8 GB: group-offload", "weights",
                 "hf download Tongyi-MAI/Z-Image-Turbo", "optional speed-ups", "fp8", "versions", "diffusers"):
        assert part in text, part
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gpu"] is None and report["auto"]["precisions_on_disk"] == []  # an empty cache
    assert set(report["auto"]["cards_1mp"]) == {"8 GB", "12 GB", "16 GB", "24 GB", "48 GB", "80 GB"}


def test_doctor_sees_a_cached_gguf(capsys, tmp_path, monkeypatch):
    import os

    hub = tmp_path / "hub"
    repo = hub / "models--unsloth--Z-Image-Turbo-GGUF"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "z-image-turbo-Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub))
    from zturbo.memory import available_quants

    assert "q8" in available_quants("Tongyi-MAI/Z-Image-Turbo")
    assert os.environ["HF_HUB_CACHE"] == str(hub)
