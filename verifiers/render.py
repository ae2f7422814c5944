"""The images the verifiers see (docs/data-engine.md §3), drawn from an image and COCO RLE masks.

* MV, one mask: a side-by-side composite ``(2·size) × size``. Left, the full image with a fuchsia box around the
  mask; right, a zoomed square crop around the mask with the mask overlaid: pixels outside it are dimmed and its
  outline is drawn in fuchsia, so the object's own colours stay readable and small objects stay visible.
* EV, one datapoint: the full image (``size × size``) with every accepted mask drawn as a red box, or the raw
  image when there are none (the prompt then says "zero boxes").

Non-square images are letterboxed onto a grey square. Masks must match the image size.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from model import rle as rle_lib
from verifiers.errors import VerifierInputError

MV_BOX_COLOUR = (255, 0, 255)  # fuchsia, as in the paper's example
EV_BOX_COLOUR = (255, 0, 0)
LETTERBOX = (128, 128, 128)
DEFAULT_SIZE = 224
CROP_CONTEXT = 1.5  # the zoomed crop's side is this times the mask's longer box side
MIN_CROP = 16  # pixels of the original image
DIM = 0.45  # brightness kept outside the mask in the zoomed crop


def decode_mask(rle: object, image: Image.Image) -> np.ndarray:
    """The (H, W) bool mask of ``rle``; VerifierInputError if it is malformed, sized differently or empty."""
    try:
        valid = rle_lib.validate(rle, size=(image.height, image.width))
    except rle_lib.InvalidRLE as exc:
        raise VerifierInputError(f"bad mask: {exc}") from exc
    mask = rle_lib.decode(valid)
    if not mask.any():
        raise VerifierInputError("empty mask: it covers no pixel of the image")
    return mask


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), exclusive ends."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _letterbox(image: Image.Image, size: int) -> tuple[Image.Image, float, int, int]:
    """``image`` scaled into a size×size square; returns it, the scale and the (x, y) offset."""
    scale = size / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (size, size), LETTERBOX)
    dx, dy = (size - w) // 2, (size - h) // 2
    canvas.paste(image.convert("RGB").resize((w, h), Image.BILINEAR), (dx, dy))
    return canvas, scale, dx, dy


def _draw_box(draw: ImageDraw.ImageDraw, box, scale: float, dx: int, dy: int, colour, width: int) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle([dx + x0 * scale - width, dy + y0 * scale - width, dx + x1 * scale + width - 1,
                    dy + y1 * scale + width - 1], outline=colour, width=width)


def _crop_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """A square window around ``box`` with context, shifted (not shrunk) to stay inside the image when possible."""
    x0, y0, x1, y1 = box
    side = max(MIN_CROP, round(max(x1 - x0, y1 - y0) * CROP_CONTEXT))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    left = min(max(left, 0), max(width - side, 0))
    top = min(max(top, 0), max(height - side, 0))
    return left, top, left + side, top + side


def default_line(size: int) -> int:
    """Outline and box width on a ``size``-pixel render: one pixel per 112 (ev.v1 and mv.v1 draw this)."""
    return max(1, size // 112)


def render_mv(image: Image.Image, rle: dict, phrase: str, *, size: int = DEFAULT_SIZE) -> Image.Image:
    """The MV composite (RGB, ``2·size`` wide, ``size`` high) for one mask of ``image``.

    ``phrase`` is not drawn (it goes into the prompt). Raises VerifierInputError for an empty mask or one whose
    size differs from the image.
    """
    mask = decode_mask(rle, image)
    rgb = image.convert("RGB")
    box = _box(mask)
    line = default_line(size)

    left, scale, dx, dy = _letterbox(rgb, size)
    _draw_box(ImageDraw.Draw(left), box, scale, dx, dy, MV_BOX_COLOUR, line)

    crop = _crop_box(box, rgb.width, rgb.height)
    zoom = rgb.crop(crop).resize((size, size), Image.BILINEAR)
    zoom_mask = Image.fromarray(mask.astype(np.uint8) * 255).crop(crop).resize((size, size), Image.NEAREST)
    dimmed = Image.eval(zoom, lambda v: int(v * DIM))
    right = Image.composite(zoom, dimmed, zoom_mask)
    # The mask's outline, ``line`` pixels either side of its edge.
    dilated = np.asarray(zoom_mask.filter(ImageFilter.MaxFilter(2 * line + 1))) > 0
    eroded = np.asarray(zoom_mask.filter(ImageFilter.MinFilter(2 * line + 1))) > 0
    right.paste(MV_BOX_COLOUR, mask=Image.fromarray(dilated & ~eroded))

    composite = Image.new("RGB", (2 * size, size))
    composite.paste(left, (0, 0))
    composite.paste(right, (size, 0))
    return composite


def render_ev(image: Image.Image, rles: list[dict], phrase: str, *, size: int = DEFAULT_SIZE,
              line: int | None = None) -> Image.Image:
    """The EV image (RGB, ``size × size``): the full image with a red box per accepted mask (none: raw image),
    drawn ``line`` pixels wide (default: one per 112 pixels; the EV template decides, see Template.box_line).

    Raises VerifierInputError for an empty mask or one whose size differs from the image.
    """
    masks = [decode_mask(rle, image) for rle in rles]
    canvas, scale, dx, dy = _letterbox(image, size)
    draw = ImageDraw.Draw(canvas)
    line = line or default_line(size)
    for mask in masks:
        _draw_box(draw, _box(mask), scale, dx, dy, EV_BOX_COLOUR, line)
    return canvas
