"""Resizes images to 224×224 RGB PNGs exactly as the seed does (Pillow: convert("RGB"),
resize((224, 224)) with its default resample), so the hub and the numpy reference can be fed
the very same pixels and the comparison is about the model alone.

Usage: python3 pillow_resize.py OUT_DIR IMAGE...   (writes OUT_DIR/<name>.png)
"""
import os
import sys

from PIL import Image

out_dir = sys.argv[1]
for path in sys.argv[2:]:
    name = os.path.splitext(os.path.basename(path))[0]
    Image.open(path).convert("RGB").resize((224, 224)).save(os.path.join(out_dir, name + ".png"))
