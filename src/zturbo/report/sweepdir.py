"""A sweep folder (read by zturbo.sweep.load_sweep, the one reader) as plain objects for the report.

The plan says what was meant to be made and in which order; the merged manifests say what happened.
An item the manifests never mention is "missing"; one marked ok whose PNG is gone is reported as
failed, never dropped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import InvalidParams

@dataclasses.dataclass
class Item:
    id: str
    experiment: str
    file: str  # relative to the sweep folder
    params: dict[str, Any]
    quant: str
    axes: dict[str, Any]
    row: str | None
    status: str = "missing"  # "ok" | "failed" | "missing"
    error: str | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=dict)  # the manifest line
    path: Path | None = None
    upscale: dict[str, Any] | None = None  # {"model": file, "size": [w, h]}: generated, then upscaled

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def size(self) -> tuple[int, int]:
        return int(self.params.get("width", 0)), int(self.params.get("height", 0))


@dataclasses.dataclass
class Experiment:
    name: str
    title: str
    knob: str
    layout: str
    axes: list[dict[str, Any]]
    items: list[Item]


@dataclasses.dataclass
class Sweep:
    root: Path
    prompt: str
    step_mapping: str
    experiments: list[Experiment]
    items: dict[str, Item]


def load(root: str | Path) -> Sweep:
    """The sweep folder as the report sees it: experiments in plan order, each item with its status."""
    from ..sweep import load_sweep

    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "no such folder"
        raise InvalidParams(f"{root}: {what} (give the folder a sweep wrote, e.g. zturbo sweep all --out DIR)")
    sweep = load_sweep(root)
    try:
        plan_items = dict(sweep.items)
        plan_exps = list(sweep.experiments)
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"{root / 'plan.json'} is damaged ({exc}); re-run the sweep to rewrite it") from None
    items: dict[str, Item] = {}
    for item_id, spec in plan_items.items():
        item = Item(
            id=item_id, experiment=spec.get("experiment", ""), file=spec.get("file", ""),
            params=dict(spec.get("params") or {}), quant=spec.get("quant") or "bf16",
            axes=dict(spec.get("axes") or {}), row=spec.get("row"),
            upscale=spec.get("upscale") if isinstance(spec.get("upscale"), dict) else None,
        )
        rec = sweep.record(item_id)
        if rec is not None:
            item.record = rec
            item.status = "ok" if rec.get("status") == "ok" else "failed"
            item.error = rec.get("error") or (None if item.ok else "failed (no error recorded)")
            item.file = rec.get("file") or item.file
            item.params = dict(rec.get("params") or item.params)
            item.quant = rec.get("quant") or item.quant
        if item.file:
            item.path = root / item.file
        if item.ok and not (item.path and item.path.is_file()):
            item.status, item.error = "failed", f"the manifest says ok but {item.file} is missing"
        items[item_id] = item
    experiments = []
    for e in plan_exps:
        ids = e.get("items") or [i for i, it in items.items() if it.experiment == e["name"]]
        experiments.append(Experiment(
            name=e["name"], title=e.get("title") or e["name"], knob=e.get("knob") or e["name"],
            layout=e.get("layout") or "row", axes=list(e.get("axes") or []),
            items=[items[i] for i in ids if i in items],
        ))
    plan = sweep.plan
    # the prompts the images used (a --file grid's `prompts` are not plan.json's prompt_default)
    used = list(dict.fromkeys(it.params["prompt"] for it in items.values() if isinstance(it.params.get("prompt"), str)))
    if len(used) > 1:
        prompt = "\n\n".join(f"P{i + 1}: {text.strip()}" for i, text in enumerate(used))
    else:
        prompt = used[0] if used else plan.get("prompt_default", "")
    return Sweep(root, prompt, plan.get("step_mapping", ""), experiments, items)
