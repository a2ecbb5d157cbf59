"""GenerationParams with an input image: validated when built, with errors that say what to do."""

import pytest
from PIL import Image

from zturbo import GenerationParams, InvalidParams

from inputs_support import half_mask, noise_image, png_header_only


def make(**kw):
    return GenerationParams(**{"prompt": "p", "seed": 1, **kw})


def test_the_output_takes_the_input_size_and_diffusers_default_strengths(photo, mask):
    p = make(image=photo)
    assert (p.width, p.height, p.strength, p.mode) == (64, 48, 0.6, "image-to-image")
    q = make(image=photo, mask=mask)
    assert (q.strength, q.mode) == (1.0, "inpainting")
    assert make().width == 1024 and make().strength is None  # text to image is unchanged


@pytest.mark.parametrize("steps,strength,passes", [(8, 0.6, 5), (8, 1.0, 8), (8, 0.05, 1), (9, 0.5, 5), (1, 0.01, 1)])
def test_passes_follow_diffusers_strength_rule(photo, steps, strength, passes):
    assert make(image=photo, steps=steps, strength=strength).passes == passes


@pytest.mark.parametrize("strength,msg", [(0, "outside (0, 1]"), (1.5, "outside (0, 1]"), (-0.1, "outside (0, 1]"),
                                          (float("nan"), "a number in (0, 1]"), (True, "a number"), ("0.5", "a number")])
def test_strength_outside_0_1_is_refused(photo, strength, msg):
    with pytest.raises(InvalidParams, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        make(image=photo, strength=strength)


@pytest.mark.parametrize("field", ["mask", "strength", "resize"])
def test_mask_strength_or_resize_without_an_image(photo, field):
    value = {"mask": str(photo), "strength": 0.5, "resize": True}[field]
    with pytest.raises(InvalidParams, match=f"{field} acts on an input image: give image too"):
        make(**{field: value})


def test_missing_folder_and_non_image_files(tmp_path):
    with pytest.raises(InvalidParams, match="no such file"):
        make(image=tmp_path / "nope.png")
    with pytest.raises(InvalidParams, match="is a folder"):
        make(image=tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InvalidParams, match="is not a PNG, JPEG or WebP image"):
        make(image=tmp_path / "notes.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "a.gif")  # a real image, in a format zturbo does not decode
    with pytest.raises(InvalidParams, match="is not a PNG, JPEG or WebP image"):
        make(image=tmp_path / "a.gif")


def test_jpeg_and_webp_are_read(tmp_path):
    assert make(image=noise_image(tmp_path / "a.jpg", quality=95)).width == 64
    assert make(image=noise_image(tmp_path / "a.webp")).height == 48


@pytest.mark.parametrize("side", [9000, 40000])
def test_decompression_bombs_are_refused_from_the_header(tmp_path, side):
    """9000^2 passes Pillow's own limit but not zturbo's 64 MP cap; 40000^2 trips Pillow's."""
    with pytest.raises(InvalidParams, match="decompression-bomb guard"):
        make(image=png_header_only(tmp_path / "bomb.png", side, side), resize=True)


def test_a_mask_of_another_size(photo, tmp_path):
    with pytest.raises(InvalidParams, match="mask .* is 32x48 but image .* is 64x48: give a mask of the image's size"):
        make(image=photo, mask=half_mask(tmp_path / "m.png", 32, 48))


def test_sides_off_the_16_grid_name_the_nearest_sizes(tmp_path):
    off = noise_image(tmp_path / "off.png", 70, 50)
    with pytest.raises(InvalidParams, match="is 70x50; both sides must be multiples of 16 .*crop it to 64x48, "
                                            "or pass --resize to resize it to 64x48"):
        make(image=off)
    p = make(image=off, resize=True)
    assert (p.width, p.height) == (64, 48)  # only because it was asked


def test_another_size_is_refused_unless_resize(photo):
    with pytest.raises(InvalidParams, match="is 64x48 but the size asked is 32x32: the output takes the input's size"):
        make(image=photo, width=32, height=32)
    p = make(image=photo, width=32, height=32, resize=True)
    assert (p.width, p.height) == (32, 32)
    assert make(image=photo, width=64, height=48).width == 64  # its own size, said out loud, is fine


def test_the_params_round_trip_through_the_recipe_dict(photo, mask):
    p = make(image=photo, mask=mask, strength=0.7)
    assert GenerationParams.from_dict(p.to_dict()) == p


def test_a_phone_photo_is_read_the_way_up_its_exif_says(tmp_path):
    """Stored 48 wide and 64 tall with EXIF orientation 6 (rotate 90°): shown, and generated, 64x48."""
    from zturbo.inputs import load, probe

    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (48, 64), "red").save(path, exif=exif, quality=95)
    assert (make(image=path).width, make(image=path).height) == (64, 48)
    assert load(probe(path), "image").pixels.size == (64, 48)


def test_text_to_image_dicts_are_unchanged(photo):
    """Recipes, sweep manifests and their resume check compare these dicts: text to image keeps its keys."""
    assert set(make().to_dict()) == {"prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height",
                                     "rng", "max_megapixels"}
    assert {"image", "mask", "strength", "resize"} <= set(make(image=photo).to_dict())
