#!/usr/bin/python3
"""Make the preprocessing fixtures and their Pillow references.

Run from anywhere with Debian's Python (Pillow 9.4, numpy):

    /usr/bin/python3 scripts/make-preprocess-fixtures.py

For every fixture image written to test/fixtures/preprocess/ it also writes
<name>.rgb.gz: the seed's preprocessing output, i.e. Pillow's

    ImageOps.exif_transpose(Image.open(f)).convert("RGB").resize((224, 224))

as raw 224*224*3 uint8 RGB (HWC), gzipped. `exif_transpose` is the one step the
seed did not have: we apply EXIF orientation on purpose. manifest.json lists every
fixture with the size and format the TypeScript side must report.

The tests never run this script; they read what it committed. Output is
deterministic (fixed seeds, gzip mtime 0), so rerunning it should not change any file.
"""

import gzip
import io
import json
import sys
import zlib
import struct
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "test" / "fixtures" / "photos"
OUT = ROOT / "test" / "fixtures" / "preprocess"
SIZE = 224

# sharp's names for the formats Pillow reports.
SHARP_FORMAT = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff"}


def photo(name, size=None):
    """A photo from test/fixtures/photos as RGB, optionally resized (Lanczos)."""
    im = Image.open(PHOTOS / name).convert("RGB")
    return im.resize(size, Image.Resampling.LANCZOS) if size else im


def seed_preprocess(path):
    """The seed's preprocessing, plus EXIF orientation. Returns (rgb, upright size, format)."""
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
        # resize() without a filter: Pillow 9.4 picks BICUBIC for RGB, as the seed did.
        out = upright.convert("RGB").resize((SIZE, SIZE))
        assert out.mode == "RGB" and out.size == (SIZE, SIZE)
        return out.tobytes(), upright.size, im.format


def write(name, data):
    (OUT / name).write_bytes(data)


def save(name, im, **params):
    """Save with Pillow, the format taken from the file name."""
    buf = io.BytesIO()
    im.save(buf, format=Image.registered_extensions()[Path(name).suffix], **params)
    write(name, buf.getvalue())


def png_16bit_rgb(arr):
    """Pillow cannot write 16-bit RGB PNGs, so encode one by hand."""
    h, w, _ = arr.shape

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


def strip_adobe_marker(jpeg):
    """Drop the APP14 'Adobe' segment, which says how a CMYK JPEG's values are stored."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i] == 0xFF and jpeg[i + 1] != 0xDA:  # walk segments up to start-of-scan
        length = struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        segment = jpeg[i:i + 2 + length]
        if not (jpeg[i + 1] == 0xEE and segment[4:9] == b"Adobe"):
            out += segment
        i += 2 + length
    assert len(out) < i, "no Adobe segment found"
    return bytes(out + jpeg[i:])


def to_cmyk(rgb):
    """RGB -> CMYK with full grey-component replacement, so that K carries real data.

    (Pillow's own RGB->CMYK leaves K at 0, which would not exercise K at all.)
    """
    a = np.asarray(rgb).astype(np.float64) / 255
    k = 1 - a.max(axis=2)
    cmy = (1 - a - k[..., None]) / np.maximum(1 - k[..., None], 1e-9)
    cmyk = np.concatenate([cmy, k[..., None]], axis=2)
    return Image.fromarray(np.round(cmyk * 255).astype(np.uint8), "CMYK")


def scene(size, variant=0):
    """A synthetic picture: flat shapes with hard edges, a gradient and fine stripes.

    It exercises the same code paths as a photo, but its 224x224 reference gzips to a
    fraction of a photo's, which keeps the fixtures small. Nothing in it is symmetric,
    so a wrong rotation or flip cannot pass.
    """
    w, h = size
    rng = np.random.default_rng(variant)
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(5)]
    im = Image.new("RGB", (w, h), colours[0])
    draw = ImageDraw.Draw(im)
    draw.ellipse((w * 0.08, h * 0.1, w * 0.55, h * 0.7), fill=colours[1])
    draw.rectangle((w * 0.6, h * 0.55, w * 0.95, h * 0.9), fill=colours[2])
    draw.polygon([(w * 0.7, h * 0.05), (w * 0.95, h * 0.45), (w * 0.5, h * 0.35)], fill=colours[3])
    # A vertical gradient strip along the bottom-left.
    ramp = np.linspace(0, 1, h // 4)[:, None, None] * np.array(colours[4]) \
        + np.linspace(1, 0, h // 4)[:, None, None] * np.array(colours[1])
    im.paste(Image.fromarray(np.repeat(ramp, w // 2, axis=1).round().astype(np.uint8)), (0, h - h // 4))
    # One-pixel stripes: the hardest case for two resamplers to agree on.
    for x in range(int(w * 0.62), int(w * 0.92), 2):
        draw.line((x, h * 0.6, x, h * 0.68), fill=(250, 250, 250))
    return im


def make_images():
    rng = np.random.default_rng(20240601)

    # A real photo, byte for byte (384x256, 4:2:0 JPEG).
    write("photo.jpg", (PHOTOS / "rocket.jpg").read_bytes())

    # Greyscale: a real single-channel JPEG, byte for byte.
    write("grey.jpg", (PHOTOS / "camera.jpg").read_bytes())

    # One flat colour.
    save("flat.png", Image.new("RGB", (300, 200), (23, 140, 201)))

    # RGBA with varying alpha, big enough to be downscaled. The left quarter is fully transparent but keeps loud,
    # non-zero colours: convert("RGB") keeps them, premultiplied resizing would not.
    rgb = np.asarray(scene((320, 240), 1)).copy()
    h, w, _ = rgb.shape
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    alpha[:, : w // 4] = 0
    rgb[: h // 2, : w // 4] = (255, 0, 255)
    rgb[h // 2:, : w // 4] = (0, 255, 0)
    alpha[h // 3: h // 3 + 12, :] = 255 - alpha[h // 3: h // 3 + 12, :]  # a stripe of reversed alpha
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))

    # Greyscale + alpha (PNG mode LA), alpha random.
    grey = scene((96, 72), 2).convert("L")
    la_alpha = Image.fromarray(rng.integers(0, 256, (72, 96), dtype=np.uint8), "L")
    save("grey-alpha.png", Image.merge("LA", (grey, la_alpha)))

    # EXIF orientation 6 and 8: the pixels are stored rotated, the tag says how to undo it.
    upright = scene((240, 160), 3)
    for orientation, stored in ((6, upright.transpose(Image.Transpose.ROTATE_90)),
                                (8, upright.transpose(Image.Transpose.ROTATE_270))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"exif-{orientation}.jpg", stored, quality=90, exif=exif.tobytes())

    # CMYK JPEG with K in use. Pillow writes an Adobe APP14 marker (inverted CMYK), as
    # Photoshop does; the second copy has it stripped. Pillow reads both as inverted, and
    # so does libvips today; the copy guards that.
    cmyk = io.BytesIO()
    to_cmyk(scene((192, 128), 4)).save(cmyk, format="JPEG", quality=90)
    write("cmyk.jpg", cmyk.getvalue())
    write("cmyk-no-adobe.jpg", strip_adobe_marker(cmyk.getvalue()))
    save("cmyk.tiff", to_cmyk(scene((96, 64), 15)), compression="tiff_deflate")

    # Palette PNG with one transparent palette entry (tRNS): the ellipse's colour.
    pal = scene((256, 256), 5).quantize(32)
    save("palette.png", pal, transparency=int(np.asarray(pal)[100, 80]))

    # A tiny image that has to be upscaled (non-integer factors 6.05 and 9.74).
    save("small.png", scene((37, 23), 6))

    # Narrow and tall: upscaled across, downscaled down (the wide case is exif-6/8).
    save("tall.png", scene((150, 320), 14))

    # Lossy WebP (4:2:0 chroma, so hard colour edges test the decoder's upsampling).
    save("photo.webp", scene((300, 200), 7), quality=80, method=4)

    # Animated GIF: three very different frames; only the first one counts.
    frames = [scene((256, 192), 8), scene((256, 192), 9), Image.new("RGB", (256, 192), (255, 255, 0))]
    save("anim.gif", frames[0].quantize(64), save_all=True,
         append_images=[f.quantize(64) for f in frames[1:]], duration=100, loop=0)

    # Two-page TIFF (deflate); only the first page counts.
    save("two-pages.tiff", scene((150, 100), 10), save_all=True,
         append_images=[scene((150, 100), 11)], compression="tiff_deflate")

    # 16-bit RGB PNG, noisy low bytes: Pillow keeps the high byte of each sample.
    base = np.asarray(scene((96, 64), 12)).astype(np.uint16) << 8
    write("rgb16.png", png_16bit_rgb(base | rng.integers(0, 256, base.shape, dtype=np.uint16)))

    # A JPEG tagged with an Adobe RGB (1998) ICC profile. Pillow ignores embedded
    # profiles, so the reference is the stored values as they are.
    icc = Path("/usr/share/color/icc/ghostscript/a98.icc").read_bytes()
    save("adobe-rgb.jpg", scene((192, 128), 13), quality=90, icc_profile=icc)


def main():
    if not PIL.__version__.startswith("9.4."):
        print(f"warning: the seed used Pillow 9.4, this is {PIL.__version__}", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():  # start clean, so no stale fixture lingers
        if old.name != "README.md":
            old.unlink()
    make_images()
    manifest = []
    for path in sorted(OUT.iterdir()):
        if path.suffix in (".gz", ".json", ".md"):
            continue
        rgb, (width, height), pil_format = seed_preprocess(path)
        write(path.name + ".rgb.gz", gzip.compress(rgb, 9, mtime=0))
        manifest.append({"file": path.name, "width": width, "height": height,
                         "format": SHARP_FORMAT[pil_format]})
    write("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(manifest)} fixtures, {total / 1024:.0f} KiB in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
