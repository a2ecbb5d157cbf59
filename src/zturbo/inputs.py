"""Input images and masks for image-to-image and inpainting: checked, read, hashed, copied beside outputs.

`probe` reads only the header (format, size, frames): GenerationParams calls it, so a missing file, a
non-image, a decompression bomb or a bad size is refused before anything loads. `load` reads the bytes
once, hashes them and decodes them for the pipeline. Only PNG, JPEG and WebP decoders are ever reached.
The recipe keeps each input's sha256 and a byte-for-byte copy beside the output (`NAME.input.jpg`,
`NAME.mask.png`), so `--from` finds the very same bytes again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from . import defaults
from .errors import InvalidParams
from .hashing import sha256_file

ROLES = ("image", "mask", "control")
FIELDS = {"image": "image", "mask": "mask", "control": "control_image"}  # role -> GenerationParams field
_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
_SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_NAMES = "PNG, JPEG or WebP"


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header says: enough to validate sizes without decoding."""

    path: Path
    format: str
    width: int  # as displayed: after the EXIF rotation a phone photo asks for
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclasses.dataclass(frozen=True)
class InputImage:
    """One input read for a run: its bytes (copied beside the output), their sha256, the decoded pixels."""

    role: str  # "image", "mask" or "control"
    source: Path
    data: bytes
    sha256: str
    format: str
    width: int
    height: int
    pixels: Image.Image  # RGB for an image, L for a mask, at the size the pipeline gets (a control image: after
    #                      --control-type's preprocessing; the copy beside the output is the bytes as given)

    def to_dict(self) -> dict[str, Any]:
        """The recipe's record (the copy's file name is added when the output is saved)."""
        return {"sha256": self.sha256, "format": self.format, "width": self.width, "height": self.height,
                "source": str(self.source.resolve())}


def _open(source: Path | io.BytesIO, path: Path, role: str) -> Image.Image:
    """Image.open with the decoders limited to PNG/JPEG/WebP and Pillow's bomb warning made an error."""
    cap = defaults.MAX_INPUT_MEGAPIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source, formats=defaults.INPUT_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidParams(f"{role} {path} has far more pixels than the {cap:g} MP zturbo decodes "
                            "(a decompression-bomb guard): downscale it first") from None
    except UnidentifiedImageError:
        raise InvalidParams(f"{role} {path} is not a {_NAMES} image (the formats zturbo reads)") from None
    except OSError as exc:
        raise InvalidParams(f"{role} {path} cannot be read: {exc.strerror or exc}") from None


def probe(path: str | os.PathLike, role: str = "image") -> ImageInfo:
    """Check an input from its header: it exists, is PNG/JPEG/WebP, one frame, under the pixel cap."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParams(f"{role} must be a path to a {_NAMES} file, got {type(path).__name__}")
    p = Path(path)
    if p.is_dir():
        raise InvalidParams(f"{role} {p} is a folder: give an image file")
    if not p.exists():
        raise InvalidParams(f"{role} {p}: no such file")
    cap = defaults.MAX_INPUT_MEGAPIXELS
    with _open(p, p, role) as im:
        fmt, (w, h) = im.format, im.size
        if w * h > cap * defaults.MEGAPIXEL:  # before anything else reads on: the pixels are never decoded
            raise InvalidParams(f"{role} {p} is {w}x{h} ({w * h / defaults.MEGAPIXEL:.0f} MP), above the {cap:g} "
                                "MP zturbo decodes (a decompression-bomb guard): downscale it first")
        try:
            frames = getattr(im, "n_frames", 1)
            orientation = _orientation(im)
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidParams(f"{role} {p} is damaged and cannot be read ({exc})") from None
    if frames > 1:
        raise InvalidParams(f"{role} {p} is animated ({frames} frames): give a single-frame image")
    if orientation in _SIDEWAYS:
        w, h = h, w
    return ImageInfo(p, fmt, w, h)


def _orientation(im: Image.Image) -> int | None:
    """The EXIF rotation a camera asks for: read from JPEG/WebP headers only (Pillow's PNG getexif decodes
    the whole file to find a trailing eXIf chunk, and phones write JPEG/WebP)."""
    return im.getexif().get(0x0112) if im.format in ("JPEG", "WEBP") else None


def load(info: ImageInfo, role: str, size: tuple[int, int] | None = None) -> InputImage:
    """Read `info.path` once: bytes, sha256 and pixels (EXIF rotation applied; RGB, or L for a mask),
    resized to `size` when given and different (the user asked for it: --resize)."""
    path = info.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParams(f"{role} {path} cannot be read: {exc.strerror or exc}") from None
    with _open(io.BytesIO(data), path, role) as im:
        try:
            if _orientation(im) not in (None, 1):
                im = ImageOps.exif_transpose(im)
            pixels = im.convert("L" if role == "mask" else "RGB")
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a damaged stream
            raise InvalidParams(f"{role} {path} is damaged and cannot be decoded ({exc})") from None
    if pixels.size != info.size:
        raise InvalidParams(f"{role} {path} changed while zturbo was reading it: run again")
    if size is not None and size != pixels.size:
        # a mask stays two-valued (diffusers binarises it at 0.5 anyway); a photo gets Lanczos
        pixels = pixels.resize(size, Image.Resampling.NEAREST if role == "mask" else Image.Resampling.LANCZOS)
    return InputImage(role, path, data, hashlib.sha256(data).hexdigest(), info.format, info.width, info.height,
                      pixels)


def read_inputs(params) -> dict[str, InputImage]:
    """The input image, mask and control image of `params` that are given, by role, read for a run at the
    output's size; a control image goes through --control-type's preprocessing (canny edges)."""
    size = (params.width, params.height)
    items = {}
    for role, field in FIELDS.items():
        path = getattr(params, field, None)
        if path is not None:
            items[role] = load(probe(path, role), role, size)
    control = items.get("control")
    if control is not None and params.control_type == "canny":
        from .canny import canny

        items["control"] = dataclasses.replace(control, pixels=canny(control.pixels))
    return items


def nearest_size(width: int, height: int) -> tuple[int, int]:
    """Each side rounded to the nearest multiple of 16 (at least 16): what --resize makes of an off-grid input."""
    m = defaults.SIZE_MULTIPLE
    return max(m, round(width / m) * m), max(m, round(height / m) * m)


def copy_path(target: str | os.PathLike, role: str, fmt: str) -> Path:
    """Where the copy of an input lives beside an output: out.png -> out.input.jpg / out.mask.png / out.control.png."""
    target = Path(target)
    return target.with_name(f"{target.stem}.{'input' if role == 'image' else role}{_EXT.get(fmt, '.bin')}")


def copy_paths(target: str | os.PathLike, params) -> list[Path]:
    """The input copies that saving `params`' image to `target` writes (none for text-to-image)."""
    out = []
    for role in ROLES:
        path = getattr(params, FIELDS[role], None)
        if path is not None:
            out.append(copy_path(target, role, probe(path, role).format))
    return out


def write_copy(item: InputImage, target: str | os.PathLike) -> Path:
    """Copy the input's bytes beside `target`, atomically; an identical file already there is kept as is."""
    return _write_once(item, copy_path(target, item.role, item.format))


def write_shared_copy(item: InputImage, folder: str | os.PathLike) -> Path:
    """One copy of the input for every output in `folder` (a sweep's `inputs/<sha256>.<ext>`), named by its
    content so that many images share it; an identical file already there is kept as is."""
    return _write_once(item, Path(folder) / "inputs" / f"{item.sha256}{_EXT.get(item.format, '.bin')}")


def _write_once(item: InputImage, dest: Path) -> Path:
    from .atomic import write_bytes_atomic

    try:
        if dest.stat().st_size == len(item.data) and sha256_file(dest) == item.sha256:
            return dest
    except OSError:
        pass
    return write_bytes_atomic(dest, item.data)


def recipe_inputs(recipe: dict[str, Any], png: str | os.PathLike, skip=()) -> dict[str, str]:
    """The input files a recipe needs, found by sha256: the copy beside `png` first, then the original path.
    Returns {role: path}; a recipe without inputs gives {}. Roles in `skip` (given anew) are not looked for."""
    found = {}
    for role, rec in (recipe.get("inputs") or {}).items():
        if role in skip:
            continue
        want = rec.get("sha256")
        candidates = []
        if rec.get("file"):
            candidates.append(Path(png).parent / rec["file"])
        if rec.get("source"):
            candidates.append(Path(rec["source"]))
        for c in candidates:
            try:
                if sha256_file(c) == want:
                    found[role] = str(c)
                    break
            except OSError:
                continue
        else:
            where = " or ".join(str(c) for c in candidates) or "nowhere (no path recorded)"
            raise InvalidParams(f"{png} was made from an input {role} (sha256 {str(want)[:12]}...) found at "
                                f"{where}: put that file back, or give --{role} to use another")
    return found
