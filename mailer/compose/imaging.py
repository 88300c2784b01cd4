"""Report images made fit to mail with Pillow: at most 1,200 px wide, sRGB, and no metadata."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

MAX_WIDTH = 1200  # twice the 600 px column: sharp on high-density screens, not heavier
COLUMN = 600  # the widest an image is shown
JPEG_QUALITY = 85
TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}
ORIENTATION = 0x0112  # the EXIF tag that says how to turn the picture
SRGB = ImageCms.createProfile("sRGB")


class ImageError(ValueError):
    """An image Pillow cannot read or that is too large; the message says why."""


@dataclass(frozen=True)
class Picture:
    """An image as readers get it: encoded bytes with no metadata, and its size in pixels."""

    data: bytes
    ext: str  # png, jpg or gif
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return TYPES[self.ext]

    @property
    def name(self) -> str:
        """A name made of the content's hash: a new picture is a new name (cached for ever)."""
        return f"{hashlib.sha256(self.data).hexdigest()[:32]}.{self.ext}"

    @property
    def shown(self) -> tuple[int, int]:
        """The size the message shows it at: at most the column's width."""
        width = min(self.width, COLUMN)
        return width, max(1, round(self.height * width / self.width))


def fit(data: bytes) -> Picture:
    """Decode ``data`` and encode it anew, turned upright, in sRGB, at most MAX_WIDTH wide,
    with nothing but pixels: no EXIF (GPS, camera), XMP, ICC profile or comment. Pillow's
    other warnings (damaged EXIF) are not printed: the metadata is dropped all the same, and
    ``damaged_metadata`` tells the editor."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as source:
                source.load()
                return _fit(source)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise ImageError(f"has more than {limit:,} pixels; make it smaller") from None
    except UnidentifiedImageError:
        raise ImageError("is not an image mailer can read (PNG, JPEG, GIF or WebP)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(f"cannot be read as an image ({error})") from None


def damaged_metadata(path: Path) -> str:
    """What Pillow finds wrong in the metadata of the image at ``path`` (a truncated EXIF
    block...), read from its header only; '' when nothing is, or when it cannot be read (the
    campaign's compilation says why)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(path) as image:
                image.getexif()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return ""
    said = [" ".join(str(w.message).split()) for w in caught
            if not issubclass(w.category, Image.DecompressionBombWarning)]  # fmt: skip
    return "; ".join(dict.fromkeys(said))


def _fit(source: Image.Image) -> Picture:
    kind = source.format or ""
    if kind == "GIF" or (getattr(source, "is_animated", False) and kind in ("PNG", "WEBP")):
        return _frames(source)
    icc = source.info.get("icc_profile")
    upright = _upright(source)
    image = _srgb(upright, icc)
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if kind in ("JPEG", "MPO") or (kind == "WEBP" and not alpha):
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        resized = _narrow(image)
        if resized is source and kind == "JPEG":  # as it was: keep its own quantisation
            return _encode(source, "jpg", "JPEG", quality="keep")
        return _encode(resized, "jpg", "JPEG", quality=JPEG_QUALITY, optimize=True)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scaled, not clipped
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if alpha else "RGB")
    return _encode(_narrow(image), "png", "PNG", optimize=True)


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says (the tag goes with the metadata)."""
    if image.getexif().get(ORIENTATION, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image)


def _srgb(image: Image.Image, icc: object) -> Image.Image:
    """Colours moved from the image's own profile (Display P3, Adobe RGB, CMYK) to sRGB,
    which mail clients assume once the profile is gone; an sRGB profile is simply dropped."""
    if isinstance(icc, bytes) and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            profile = ImageCms.ImageCmsProfile(BytesIO(icc))
            described = (ImageCms.getProfileDescription(profile) or "").lower()
            if "srgb" not in described.replace(" ", ""):
                mode = "RGBA" if image.mode == "RGBA" else "RGB"
                converted = ImageCms.profileToProfile(image, profile, SRGB, outputMode=mode)
                if converted is not None:
                    return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: its numbers are read as sRGB
    return image.convert("RGB") if image.mode == "CMYK" else image


def _narrow(image: Image.Image) -> Image.Image:
    if image.width <= MAX_WIDTH:
        return image
    if image.mode in ("1", "P"):
        image = image.convert("RGBA")
    height = max(1, round(image.height * MAX_WIDTH / image.width))
    return image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)


def _frames(source: Image.Image) -> Picture:
    """A GIF, or an animated PNG or WebP, as a GIF: every frame narrowed, timings kept."""
    frames, durations = [], []
    for frame in ImageSequence.Iterator(source):
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(_narrow(frame.convert("RGBA")))
    for frame in frames:
        frame.info = {}
    out = BytesIO()
    if len(frames) == 1:
        frames[0].save(out, "GIF")
    else:
        loop = int(source.info.get("loop", 0))
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations,
                       loop=loop, disposal=2)  # fmt: skip
    return Picture(out.getvalue(), "gif", frames[0].width, frames[0].height)


def _encode(image: Image.Image, ext: str, kind: str, **options: object) -> Picture:
    """``image`` saved with only the options given: Pillow would otherwise copy an ICC
    profile or a comment over from what it read."""
    image.info = {}
    out = BytesIO()
    image.save(out, kind, **options)
    return Picture(out.getvalue(), ext, image.width, image.height)
