"""Run a Plan into a folder: one model load per precision, nothing lost, resumable, sharded.

- An image's record is appended to the manifest only after its PNG is on disk (atomic write, fsync).
- An input image or mask is copied once into DIR/inputs/<sha256>.<ext> (before the first PNG naming it);
  each recipe points at that copy, so the report and `generate --from` work after the original moves.
- Re-running resumes: an item whose last record is ok, whose PNG still has the recorded sha256 and whose
  params match the plan (an input image's sha256 included) is skipped; everything else is (re)made.
- Never overwrites an image an earlier run made with other settings (nor drops an earlier same-named
  experiment's images from plan.json) unless asked (`overwrite=True`): it says what differs and stops.
- One failing item (bad value, out of memory, NaN) is recorded as failed and the sweep goes on. A
  precision that cannot be loaded leaves its items pending (nothing is recorded for them) and the sweep
  goes on with the next one; when no precision loads, the sweep stops with that one error.
- Free disk is checked before the first image; a full disk stops the sweep with the manifest whole.
- Under `accelerate launch` (or torchrun: RANK / WORLD_SIZE / LOCAL_RANK), each process makes its share
  of the items (plan.shard) and appends to manifest.rank<N>.jsonl; rank 0 merges when all are done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import os
import queue
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import defaults
from ..atomic import write_text_atomic
from ..errors import Cancelled, DiskFull, InvalidParams, ZTurboError
from ..metadata import save_png
from . import manifest as mf
from .plan import Item, Plan, estimated_bytes, format_bytes, format_seconds, load_label, load_order, loads_text, shard

# (quant) -> Engine; keyword lora_scale= for an item with a lora_scale, loras= for an item of a lora axis
EngineLoader = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Launch:
    """Which process this is among how many (accelerate launch and torchrun set these variables)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Launch:
        env = os.environ if env is None else env
        try:
            world = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise InvalidParams("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
        if world < 1 or not 0 <= rank < world:
            raise InvalidParams(f"RANK {rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE {world})")
        return cls(rank, world, local)

    @property
    def sharded(self) -> bool:
        return self.world_size > 1


@dataclasses.dataclass
class Outcome:
    items: list[Item]  # the items this process reports on (the whole plan on rank 0 after a merge)
    made: int = 0
    skipped: int = 0
    failed: int = 0
    records: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    not_loaded: dict[str, tuple[Exception, int]] = dataclasses.field(default_factory=dict)  # load -> (error, images)

    @property
    def any_failed(self) -> bool:
        return any((self.records.get(i.id) or {}).get("status") != "ok" for i in self.items)


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def lora_key(loras) -> tuple[tuple[str, float], ...]:
    """What decides a sweep's images besides the items: its LoRAs as (sha256, scale), order-free (fusing is)."""
    from ..hashing import cached_sha256

    return tuple(sorted((cached_sha256(path), float(scale)) for path, scale in loras))


def item_loras(item: Item, loras: tuple[tuple[str, float], ...] | None) -> tuple[tuple[str, float], ...] | None:
    """The LoRAs (lora_key) this item is made with: a lora axis's own (compared always: another file at its
    path is another image), else the run's, with the item's own lora_scale for the one LoRA (the CLI refuses
    a lora_scale axis unless exactly one --lora is given)."""
    if item.loras is not None:
        return lora_key(item.loras)
    if loras is None or item.lora_scale is None or len(loras) != 1:
        return loras
    return ((loras[0][0], float(item.lora_scale)),)


def _recorded_loras(record: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((r.get("sha256"), float(r.get("scale", 1.0))) for r in record.get("loras") or []))


def _differences(item: Item, record: dict[str, Any], model: str | None,
                 loras: tuple[tuple[str, float], ...] | None = None, controlnet: str | None = None) -> dict[str, str]:
    """What a record made differently from this item as planned now: {"size": "size 64x64 -> 32x32", ...}.
    `loras` (lora_key of the run's LoRAs; None: not compared) counts too: another LoRA or scale is another image;
    so does `controlnet` (the run's ControlNet file's sha256, "" for none; None: not compared)."""
    out = {}
    if record.get("quant") != item.quant:
        out["quant"] = f"quant {record.get('quant')} -> {item.quant}"
    want, got = item.params.to_dict(), dict(record.get("params") or {})
    for limit in ("max_megapixels",):  # a guard on input, not a knob of the image
        want.pop(limit, None)
        got.pop(limit, None)
    if want.get("rng") is None:  # the engine picked the rng and recorded its choice
        got.pop("rng", None)
        want.pop("rng", None)
    size = lambda p: f"{p.get('width')}x{p.get('height')}"  # noqa: E731
    if size(want) != size(got):
        out["size"] = f"size {size(got)} -> {size(want)}"
    for key in sorted(set(want) | set(got)):
        if key not in ("width", "height") and want.get(key) != got.get(key):
            out[key] = f"{key} {got.get(key)!r} -> {want.get(key)!r}"
    if item.upscale:  # the upscaler makes the image too: another file (or the same name, changed) redoes it
        steps = record.get("upscale") or [{}]
        if steps[-1].get("weights_sha256") != item.upscale.get("sha256"):
            out["upscaler"] = f"upscaler -> {Path(item.upscale['model']).name}"
    out.update(_input_differences(item, record))
    made_with = (record.get("model") or {}).get("model")
    if model is not None and made_with != model:
        out["model"] = f"model {made_with} -> {model}"
    had_cn = (record.get("controlnet") or {}).get("sha256") or ""
    if controlnet is not None and had_cn != controlnet:
        out["controlnet"] = f"ControlNet sha256 {had_cn[:12] or 'none'} -> {controlnet[:12] or 'none'}"
    loras = item_loras(item, loras)
    if loras is not None and _recorded_loras(record) != loras:
        had = ", ".join(f"{r.get('name')}:{r.get('scale', 1.0):g}" for r in record.get("loras") or []) or "none"
        out["loras"] = f"LoRAs {had} -> {', '.join(f'{sha[:12]}:{s:g}' for sha, s in loras) or 'none'}"
        same_paths = item.loras is not None and sorted(os.path.abspath(p) for p, _ in item.loras) == sorted(
            str(r.get("path")) for r in record.get("loras") or [])
        if same_paths:  # a lora axis's file, same path, other bytes
            was = ", ".join(str(r.get("sha256"))[:12] for r in record.get("loras") or [])
            out["loras"] += f" (another file at the same path; made with sha256 {was})"
    return out


def _input_differences(item: Item, record: dict[str, Any]) -> dict[str, str]:
    """Another file at the input's path (its sha256 is not the recorded one) makes another image."""
    from ..hashing import cached_sha256

    out = {}
    recorded = record.get("inputs") or {}
    from ..inputs import FIELDS

    for role, field in FIELDS.items():
        path = getattr(item.params, field, None)
        if path is None:
            continue
        had, now = (recorded.get(role) or {}).get("sha256"), cached_sha256(path)
        if had != now:
            out[f"input {role}"] = (f"input {role} {path} sha256 {str(had)[:12]} -> {now[:12]} "
                                    "(another file at the same path)")
    return out


def _matches(item: Item, record: dict[str, Any] | None, model: str | None, loras=None, controlnet=None) -> bool:
    """Does a record describe this item as planned now (same params, precision, model, LoRAs, ControlNet)?"""
    return bool(record) and not _differences(item, record, model, loras, controlnet)


def _has_image(folder: Path, record: dict[str, Any] | None) -> bool:
    return bool(record and record.get("status") == "ok" and record.get("file") and (folder / record["file"]).is_file())


def check_no_overwrite(plan: Plan, folder: Path, records: dict[str, dict[str, Any]], model: str | None,
                       loras=None, controlnet=None) -> None:
    """Refuse a run that would replace an image made with other settings, or drop the images of an earlier
    experiment of the same name from plan.json (a grid re-run with another --size, say). Same settings
    resume; failed and missing images are simply made. Another upscaler file re-makes the upscale
    experiment's upscaled images by design (README: the upscaler's sha256 is part of the item)."""
    replaced = [(i, _differences(i, records[i.id], model, loras, controlnet)) for i in plan.items
                if _has_image(folder, records.get(i.id))]
    replaced = [(i, [text for key, text in diff.items() if key != "upscaler"]) for i, diff in replaced]
    replaced = [(i, diff) for i, diff in replaced if diff]
    if replaced:
        item, diff = replaced[0]
        raise InvalidParams(
            f"{folder} already holds {len(replaced)} image(s) this run would replace with other settings "
            f"({item.file}: {', '.join(diff)}): give another --out (or --name for a --vary grid) to keep both, "
            "or add --overwrite to replace them")
    earlier = mf.read_plan(folder) or {}
    mine = {e.name: {i.id for i in e.items} for e in plan.experiments}
    for exp in earlier.get("experiments", []):
        gone = [i for i in exp.get("items", []) if exp["name"] in mine and i not in mine[exp["name"]]
                and _has_image(folder, records.get(i))]
        if gone:
            raise InvalidParams(
                f"{folder} already holds an experiment {exp['name']!r} with {len(gone)} image(s) this run does not "
                f"make (e.g. {records[gone[0]]['file']}): give another --out (or --name for a --vary grid) to keep "
                "both, or add --overwrite to replace that experiment (its files stay on disk)")


def is_done(folder: Path, item: Item, record: dict[str, Any] | None, model: str | None, loras=None,
            controlnet=None) -> bool:
    """Skipped on resume: recorded as planned now, and its PNG still on disk with the recorded hash."""
    return _matches(item, record, model, loras, controlnet) and mf.record_is_valid(folder, record)


def _clean_temp_files(folder: Path, items: list[Item]) -> None:
    """Temp files a killed process left behind for these items (only ours: another rank may be writing)."""
    for item in items:
        target = folder / item.file
        if target.parent.is_dir():
            for stale in target.parent.glob(f".{target.name}.*.part"):
                stale.unlink(missing_ok=True)


def check_disk(folder: Path, items: list[Item]) -> None:
    need = estimated_bytes(items) + defaults.SWEEP_DISK_MARGIN_BYTES
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DiskFull(f"{len(items)} images need up to {format_bytes(need)} but {folder} has {format_bytes(free)} "
                       "free: free some space or choose another --out")


def _disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _record(item: Item, status: str, *, error: str | None = None, file: str | None = None, sha: str | None = None,
            recipe: dict[str, Any] | None = None, engine: Any = None, seconds: float = 0.0, rank: int | None = None):
    recipe = recipe or {}
    timings = recipe.get("timings", {})
    return {
        "id": item.id, "experiment": item.experiment, "status": status, "error": error, "file": file, "sha256": sha,
        "params": recipe.get("params", item.params.to_dict()), "quant": item.quant, "axes": item.axes, "row": item.row,
        "passes": recipe.get("passes"), "timings": timings,
        "seconds": round(sum(timings.values()), 4) if timings else round(seconds, 4),
        "peak_memory_gb": recipe.get("peak_memory_gb"),
        "device": recipe.get("device") or getattr(engine, "device_name", None),
        "versions": recipe.get("versions") or getattr(engine, "versions", None) or {},
        "model": recipe.get("model") or (engine.info.to_dict() if engine is not None else {}),
        "warnings": recipe.get("warnings", []), "upscale": recipe.get("upscale"), "rank": rank,
        "loras": (recipe.get("loras") if recipe else getattr(engine, "loras", None)) or [],
        "inputs": recipe.get("inputs"),  # the input image's / mask's / control image's sha256: resume compares them
        "controlnet": recipe.get("controlnet"),  # the ControlNet file's name, sha256 and variant
        "finished_at": mf.now_iso(),
    }


def _marker(folder: Path, rank: int) -> Path:
    return folder / f".rank{rank}.done"


def run_sweep(plan: Plan, folder: str | os.PathLike, *, loader: EngineLoader, model: str | None = None,
              launch: Launch | None = None, quiet: bool = False, merge: bool = True,
              poll_seconds: float = 1.0, overwrite: bool = False,
              loras: tuple[tuple[str, float], ...] | None = None, controlnet: str | None = None) -> Outcome:
    """Make every item of `plan` (this process's share of it) into `folder`; see the module docstring.
    `overwrite`: replace images made in `folder` with other settings (refused otherwise). `controlnet`: the
    run's ControlNet sha256 ("" for none), compared on resume like the LoRAs (None: not compared)."""
    launch = launch or Launch()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file, not a folder" if folder.exists() else exc.strerror
        raise InvalidParams(f"cannot use {folder} as the sweep folder: {why}") from None
    rank = launch.rank if launch.sharded else None
    mine = shard(plan.items, launch.rank, launch.world_size)
    if launch.sharded:
        _marker(folder, launch.rank).unlink(missing_ok=True)

    records = mf.merged_records(folder)
    if not overwrite:
        check_no_overwrite(plan, folder, records, model, loras, controlnet)
    pending = [i for i in mine if not is_done(folder, i, records.get(i.id), model, loras, controlnet)]
    outcome = Outcome(items=mine, skipped=len(mine) - len(pending))
    check_disk(folder, pending)
    mf.write_plan(folder, plan.to_json(mf.read_plan(folder)))
    _clean_temp_files(folder, pending)
    who = f"rank {launch.rank}/{launch.world_size}: " if launch.sharded else ""
    loads = sorted(dict.fromkeys(i.load for i in pending), key=load_order)  # stable: plan order within a key
    say(f"{who}{len(mine)} images in this sweep{' shard' if launch.sharded else ''}: {outcome.skipped} already done, "
        f"{len(pending)} to make" + (f" in {loads_text(len(loads), pending)}" if pending else ""), quiet)

    bar = _Progress(pending, f"rank {launch.rank}" if launch.sharded else "sweep", disable=quiet or not pending)
    saver = _Saver(folder, rank, bar)
    finished = "stopped"
    try:
        for n, load in enumerate(loads):  # a precision, with one LoRA scale or LoRA files (fused at load)
            if n:
                _release_memory()  # the previous load's engine, before the next one loads
            # one shape after another (stable: plan order within a shape): with --fast each shape compiles
            # once, and torch.compile's per-function recompile limit is never hit by alternating shapes
            group = sorted((i for i in pending if i.load == load), key=lambda i: (i.params.width, i.params.height))
            _run_precision(load, group, loader, folder, saver, rank, outcome)
        saver.close()
        saver.raise_error()
        finished = "done"
        if pending and len(outcome.not_loaded) == len(loads):
            raise _nothing_loaded(outcome.not_loaded, folder)
    finally:
        saver.close()  # on Ctrl-C too: the image already made is written before we stop
        bar.close()
        if launch.sharded:  # even when stopped, so that rank 0 does not wait for this rank forever
            with contextlib.suppress(OSError):
                write_text_atomic(_marker(folder, launch.rank), f"{finished} {mf.now_iso()}\n")

    if launch.sharded:
        if launch.rank == 0 and merge:
            _wait_for_shards(folder, launch.world_size, quiet, poll_seconds)
            mf.merge(folder)
            say(f"merged {launch.world_size} manifest shards into {folder / mf.MANIFEST_FILE}", quiet)
            outcome.items = plan.items
    elif any(p.name != mf.MANIFEST_FILE for p in mf.manifest_files(folder)):
        mf.merge(folder)  # shards from an earlier sharded run: fold them in
    outcome.records = mf.merged_records(folder)
    return outcome


def _units(item: Item) -> int:
    """An item's share of the progress bar, in whole units: sums of floats depend on their order, and a
    total exceeded by a rounding error made tqdm show a negative ETA ("-00:00")."""
    return max(1, round(item.cost * 1000))


class _Progress:
    """The sweep's progress bar: it advances by each image's estimated cost (passes x megapixels), so the
    ETA holds when step counts and sizes differ, as across the article's sweeps; it shows images done.
    It never passes its total, so the ETA is never negative."""

    def __init__(self, items: list[Item], desc: str, disable: bool):
        from tqdm import tqdm

        self.name, self.images, self.done, self.now = desc, len(items), 0, ""
        self._lock = threading.Lock()
        self.bar = tqdm(total=sum(_units(i) for i in items) or 1, disable=disable, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc} images {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]")
        self._show()

    def _show(self) -> None:
        self.bar.set_description_str(f"{self.name} {self.done}/{self.images}", refresh=False)
        self.bar.set_postfix_str(self.now)

    def working_on(self, text: str) -> None:
        with self._lock:
            self.now = text
            self._show()

    def loaded(self) -> None:
        """Start the clock once the first model is loaded: a minute of loading is no rate of images."""
        with self._lock:
            if self.done == 0:
                self.bar.reset(total=self.bar.total)
                self._show()

    def finished(self, item: Item) -> None:
        with self._lock:
            self.done += 1
            self._show()
            self.bar.update(max(0, min(_units(item), self.bar.total - self.bar.n)))

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class _Saver:
    """Writes the PNGs and appends their records on one background thread, in order, so that PNG encoding
    and hashing overlap the next image's generation instead of adding to it (tens of ms per megapixel,
    a few percent of a GPU generation). One job waits at most, so a SIGKILL loses at most the image being
    written and the one being made; Ctrl-C and errors drain the queue first. A failed write (a full disk)
    stops the jobs after it and is raised in the sweep's thread."""

    def __init__(self, folder: Path, rank: int | None, bar: _Progress):
        self.folder, self.rank, self.bar = folder, rank, bar
        self.manifest = mf.ManifestWriter(folder, rank)
        self._copies: dict[str, Path] = {}  # sha256 -> its copy under inputs/, written (or found) this run
        self.error: BaseException | None = None
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="zturbo-sweep-saver", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # handed to the sweep's thread by raise_error()
                    self.error = exc

    def submit(self, job: Callable[[], None]) -> None:
        self.raise_error()
        self._jobs.put(job)

    def append(self, item: Item, record: dict[str, Any]) -> None:
        def job():
            _append(self.manifest, record)
            self.bar.finished(item)

        self.submit(job)

    def save(self, item: Item, image: Any, recipe: dict[str, Any], engine: Any, inputs: list | None = None) -> None:
        def job():
            target = self.folder / item.file
            try:
                self._copy_inputs(inputs or [], recipe, target)  # first: a PNG never names a missing copy
                save_png(image, target, recipe)
            except OSError as exc:
                if _disk_full(exc):
                    raise DiskFull(f"the disk is full: stopped at {item.file}; the manifest is intact. "
                                   "Free some space and run the same command again to resume") from None
                raise
            _append(self.manifest, _record(item, "ok", file=item.file, sha=mf.sha256_of(target), recipe=recipe,
                                           engine=engine, rank=self.rank))
            self.bar.finished(item)

        self.submit(job)

    def _copy_inputs(self, inputs: list, recipe: dict[str, Any], target: Path) -> None:
        """The input image and mask, copied once per sweep to inputs/<sha256>.<ext> (never one per image);
        the recipe names the copy relative to the PNG, so the report and `generate --from` find it after the
        original moves."""
        from ..inputs import write_shared_copy

        for inp in inputs:
            copy = self._copies.get(inp.sha256)
            if copy is None:
                copy = self._copies[inp.sha256] = write_shared_copy(inp, self.folder)
            recipe["inputs"][inp.role]["file"] = Path(os.path.relpath(copy, target.parent)).as_posix()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._thread.join()
            self.manifest.close()


def _run_precision(load: tuple, group: list[Item], loader: EngineLoader, folder: Path,
                   saver: _Saver, rank: int | None, outcome: Outcome) -> None:
    """One model load, then every item of this precision (and LoRA scale or files); the engine is freed before
    the next."""
    bar = saver.bar
    quant, scale, loras = load
    extra = {k: v for k, v in (("lora_scale", scale), ("loras", loras)) if v is not None}
    try:
        bar.working_on(f"loading {load_label(load)}")
        engine = loader(quant, **extra)
        bar.loaded()
    except ZTurboError as exc:  # weights missing or damaged: nothing of this load can be made
        outcome.not_loaded[load_label(load)] = (exc, len(group))
        return
    for item in group:
        bar.working_on(item.id[-40:])
        ok = _make(item, engine, saver, rank)
        outcome.made += ok
        outcome.failed += not ok


def _nothing_loaded(not_loaded: dict[str, tuple[Exception, int]], folder: Path) -> ZTurboError:
    """The one error of a sweep that could load no precision: the first failure in full (it says what to
    do), the others by name, with the gist of the first different cause."""
    (quant, (first, _)), *rest = not_loaded.items()
    same = [q for q, (exc, _) in rest if str(exc) == str(first)]
    other = [(q, exc) for q, (exc, _) in rest if str(exc) != str(first)]
    text = f"cannot load {', '.join([quant, *same])}: {str(first).rstrip('.')}"
    if other:
        gist = str(other[0][1]).split(". ")[0].rstrip(".")
        text += f" ({', '.join(q for q, _ in other)} could not be loaded either: {gist})"
    return type(first)(f"{text}. Nothing was made; {folder} keeps its plan: run the same command again once "
                       "the model loads")


def _release_memory() -> None:
    # Only between precisions: a full gc.collect() takes ~0.5 s with torch and diffusers loaded.
    gc.collect()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        sys.modules["torch"].cuda.empty_cache()


def _append(writer: mf.ManifestWriter, record: dict[str, Any]) -> None:
    try:
        writer.append(record)
    except OSError as exc:
        if _disk_full(exc):
            raise DiskFull(f"the disk is full: stopped before recording {record['id']}; the manifest is intact. "
                           "Free some space and run the same command again to resume") from None
        raise


def _make(item: Item, engine: Any, saver: _Saver, rank: int | None) -> bool:
    t0 = time.perf_counter()
    try:
        result = engine.generate(item.params)
        if item.upscale:
            _upscale(item, result, engine)
    except Cancelled:
        raise
    except ZTurboError as exc:
        if hasattr(engine, "free_memory"):
            engine.free_memory()
        saver.bar.write(f"failed: {item.id}: {exc}")
        saver.append(item, _record(item, "failed", error=str(exc), engine=engine, seconds=time.perf_counter() - t0, rank=rank))
        return False
    recipe = dict(result.recipes[0], sweep={"id": item.id, "experiment": item.experiment, "axes": item.axes})
    bad = "NaN or inf in the latents" if recipe.get("nan") else "an all-black image" if recipe.get("black") else None
    if bad:
        saver.bar.write(f"failed: {item.id}: {bad}")
        saver.append(item, _record(item, "failed", error=bad, recipe=recipe, engine=engine, rank=rank))
        return False
    inputs = getattr(result, "inputs", None)  # a text-to-image result (or a test's stand-in) has none
    saver.save(item, result.image, recipe, engine, inputs[0] if inputs else [])
    return True


def _upscale(item: Item, result: Any, engine: Any) -> None:
    """The upscale experiment's second arm: the generated image upscaled to the item's size."""
    from ..upscale import cached_upscaler, upscale_result

    upscaler = cached_upscaler(item.upscale["model"], getattr(engine, "device", None))
    upscale_result(upscaler, result, size=tuple(item.upscale["size"]))


def _wait_for_shards(folder: Path, world_size: int, quiet: bool, poll_seconds: float) -> None:
    """Rank 0 waits until every rank has finished or stopped (each removes its marker when it starts and
    writes it when it ends)."""
    last_note = time.monotonic()
    while True:
        waiting = [r for r in range(world_size) if not _marker(folder, r).exists()]
        if not waiting:
            return
        if time.monotonic() - last_note > 60:
            say(f"waiting for rank(s) {', '.join(map(str, waiting))} to finish (Ctrl-C is safe: run "
                f"`zturbo sweep --merge {folder}` later)", quiet)
            last_note = time.monotonic()
        time.sleep(poll_seconds)


def summary_table(groups: list[tuple[str, list[str]]], records: dict[str, dict[str, Any]],
                  not_loaded: dict[str, tuple[Any, int]] | None = None) -> str:
    """One line per experiment: images, ok, failed, pending, seconds per image, total seconds; "all" counts
    each image once. `groups` are (experiment, item ids) in plan order (Plan.groups: the dry run's counts)."""
    from .plan import shared_note

    def row(name: str, ids: list[str]) -> tuple[str, ...]:
        recs = [records.get(i) for i in ids]
        ok = [r for r in recs if r and r.get("status") == "ok"]
        failed = sum(1 for r in recs if r and r.get("status") == "failed")
        secs = sum(r.get("seconds") or 0 for r in ok)
        return (name, str(len(ids)), str(len(ok)), str(failed), str(len(ids) - len(ok) - failed),
                f"{secs / len(ok):.2f}" if ok else "-", format_seconds(secs))

    every = list(dict.fromkeys(i for _, ids in groups for i in ids))
    rows = [("experiment", "images", "ok", "failed", "pending", "s/image", "total")]
    rows += [row(name, ids) for name, ids in groups] + [row("all", every)]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    if note := shared_note(groups):
        lines.append(note.strip())
    for quant, (error, count) in (not_loaded or {}).items():
        lines.append(f"not made: {count} {quant} image(s), {quant} could not be loaded: {error}")
    failed = [(i, records[i].get("error")) for i in every if (records.get(i) or {}).get("status") == "failed"]
    for item_id, error in failed[:10]:
        lines.append(f"failed: {item_id}: {error}")
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more failed (see the manifest)")
    return "\n".join(lines)
