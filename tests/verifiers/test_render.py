"""What the verifiers see: the MV side-by-side composite and the EV boxes image (docs/data-engine.md §3)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model import rle
from verifiers.errors import VerifierInputError
from verifiers.render import EV_BOX_COLOUR, MV_BOX_COLOUR, render_ev, render_mv


def _has_colour(image: Image.Image, colour) -> bool:
    return bool((np.asarray(image) == np.array(colour, dtype=np.uint8)).all(axis=-1).any())


def test_mv_composite_is_two_squares_box_left_zoomed_overlay_right(scene_image, scene_rles):
    composite = render_mv(scene_image, scene_rles[0], "yellow square", size=112)
    assert composite.size == (224, 112) and composite.mode == "RGB"
    left, right = composite.crop((0, 0, 112, 112)), composite.crop((112, 0, 224, 112))
    assert _has_colour(left, MV_BOX_COLOUR) and _has_colour(right, MV_BOX_COLOUR)
    # The zoomed crop shows the object large and undimmed; the dimmed surroundings stay below R = 120.
    bright = np.asarray(right)[..., 0] > 120
    assert bright.mean() > 0.3


def test_small_masks_are_zoomed_not_lost(scene_image):
    mask = np.zeros((224, 224), dtype=bool)
    mask[100:103, 50:53] = True  # 9 pixels
    composite = render_mv(scene_image, rle.encode(mask), "dot", size=112)
    right = np.asarray(composite)[:, 112:]
    assert (right == MV_BOX_COLOUR).all(axis=-1).sum() > 50


def test_ev_draws_one_red_box_per_mask_or_the_raw_image(scene_image, scene_rles):
    boxed = render_ev(scene_image, scene_rles, "yellow shape", size=112)
    raw = render_ev(scene_image, [], "yellow shape", size=112)
    assert boxed.size == raw.size == (112, 112)
    assert _has_colour(boxed, EV_BOX_COLOUR) and not _has_colour(raw, EV_BOX_COLOUR)
    assert np.array_equal(np.asarray(raw), np.asarray(scene_image.resize((112, 112), Image.BILINEAR)))


def test_ev_box_line_width_is_as_asked(scene_image, scene_rles):
    def red_rows(line):  # red pixels on the box's left edge, per row crossing it
        image = np.asarray(render_ev(scene_image, scene_rles[:1], "x", size=224, line=line))
        red = (image == EV_BOX_COLOUR).all(axis=-1)
        row = red[red.any(axis=1)][len(red[red.any(axis=1)]) // 2]
        return int(row.sum())

    assert red_rows(None) == 2 * 2 and red_rows(4) == 2 * 4  # left + right edge at mid-height


def test_non_square_images_are_letterboxed(scene_image, scene_rles):
    wide = scene_image.crop((0, 0, 224, 150))
    mask = rle.decode(scene_rles[0])[:150]
    assert render_mv(wide, rle.encode(mask), "x", size=64).size == (128, 64)
    assert render_ev(wide, [rle.encode(mask)], "x", size=64).size == (64, 64)


def test_empty_mask_is_refused(scene_image):
    empty = rle.encode(np.zeros((224, 224), dtype=bool))
    with pytest.raises(VerifierInputError, match="empty mask"):
        render_mv(scene_image, empty, "square")
    with pytest.raises(VerifierInputError, match="empty mask"):
        render_ev(scene_image, [empty], "square")


@pytest.mark.parametrize("bad", [
    rle.encode(np.ones((100, 224), dtype=bool)),  # another image's size: outside this one
    {"size": [224, 224], "counts": "not an rle"},
    {"size": [224, 224]},
])
def test_mask_not_of_this_image_is_refused(scene_image, bad):
    with pytest.raises(VerifierInputError, match="bad mask"):
        render_mv(scene_image, bad, "square")
    assert issubclass(VerifierInputError, ValueError)
