"""Uploaded input images and masks: read under a size cap, checked by content, stored by hash.

An upload is stored as OUT/uploads/<sha256>.<ext> (atomically; the same bytes twice are one file), so a
job's recipe names a file that stays beside the outputs and `zturbo generate --from` finds it. The name
the client gave is never used as a path. inputs.py does the checking (PNG/JPEG/WebP only, decided by the
bytes; decompression bombs refused from the header; damaged files refused), exactly as for the CLI.

Masks: zturbo's convention is diffusers' (white = repaint, black = keep). OpenAI's is the alpha channel
(transparent = edit). A mask with an alpha channel that is transparent anywhere is converted:
its grey level becomes 255 - alpha (transparent -> white, repaint; opaque -> black, keep) and it is
stored as that greyscale PNG. A mask without transparency (greyscale, RGB, or fully opaque RGBA) is
taken as it is, white = repaint.
"""

from __future__ import annotations

import hashlib
import io
import re
import reprlib
import tempfile
from pathlib import Path

from PIL import Image, ImageOps
from starlette.datastructures import UploadFile

from .. import defaults, inputs
from ..atomic import write_bytes_atomic
from ..errors import InvalidParams
from ..hashing import sha256_file

FOLDER = "uploads"
_NAME = re.compile(r"[0-9a-f]{64}\.(png|jpg|webp)")
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
_CHUNK = 1 << 20


class UploadTooLarge(InvalidParams):
    """An upload over the per-file cap (HTTP 413)."""


async def read_capped(file: UploadFile, role: str, cap: int) -> bytes:
    """The upload's bytes, refused as soon as they pass `cap` (never read whole first)."""
    chunks, size = [], 0
    while chunk := await file.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise UploadTooLarge(f"{role} upload is over the {cap / 2**20:g} MiB limit per file: send a smaller "
                                 "file (PNG, JPEG or WebP)")
        chunks.append(chunk)
    if not size:
        raise InvalidParams(f"{role} upload is empty: send a PNG, JPEG or WebP file")
    return b"".join(chunks)


def _alpha_mask(data: bytes) -> bytes | None:
    """OpenAI's mask (transparent = edit) as zturbo's (white = repaint): PNG bytes of 255 - alpha, or None
    when the mask has no transparency (it is then taken as it is)."""
    with Image.open(io.BytesIO(data), formats=defaults.INPUT_FORMATS) as im:
        if "A" not in im.getbands() and "transparency" not in im.info:
            return None
        im = ImageOps.exif_transpose(im) if inputs._orientation(im) not in (None, 1) else im
        alpha = im.convert("RGBA").getchannel("A")
    if alpha.getextrema()[0] == 255:  # fully opaque: the grey levels are the mask
        return None
    out = io.BytesIO()
    ImageOps.invert(alpha).save(out, format="PNG")
    return out.getvalue()


def _check(data: bytes, role: str, folder: Path) -> tuple[bytes, str]:
    """(bytes to store, format): inputs.py's checks run on a temp copy; its path never reaches a message."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload.", suffix=".part") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            item = inputs.load(inputs.probe(tmp.name, role), role)  # header checks, then a full decode
            if role == "mask" and (converted := _alpha_mask(data)) is not None:
                return converted, "PNG"
        except InvalidParams as exc:
            raise InvalidParams(str(exc).replace(f"{role} {tmp.name}", f"{role} upload")) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidParams(f"{role} upload is damaged and cannot be decoded ({exc})") from None
    return data, item.format


def store(out_dir: Path, data: bytes, role: str) -> Path:
    """Check an upload and keep it as OUT/uploads/<sha256>.<ext>; returns that path."""
    folder = out_dir / FOLDER
    folder.mkdir(exist_ok=True)
    if not folder.resolve().is_relative_to(out_dir.resolve()):
        raise InvalidParams(f"{folder} leads outside the output folder: remove that link")
    data, fmt = _check(data, role, folder)
    sha = hashlib.sha256(data).hexdigest()
    target = folder / f"{sha}{inputs._EXT[fmt]}"
    try:
        if sha256_file(target) == sha:
            return target  # the same bytes were uploaded before
    except OSError:
        pass
    return write_bytes_atomic(target, data)


def resolve(out_dir: Path, name: object, role: str) -> str:
    """The path of an earlier upload named `name` (as POST /api/uploads returned it); InvalidParams otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParams(f"{role} must be the name of an upload (POST the file to /api/uploads; it returns "
                            f"a name like <sha256>.png), got {reprlib.repr(name)}")
    path = out_dir / FOLDER / name
    if not path.is_file():
        raise InvalidParams(f"{role} {name} is not among this server's uploads: POST the file to /api/uploads first")
    return str(path)
