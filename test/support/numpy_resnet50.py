"""ResNet50 inference in plain numpy (float64), written from scratch, reading a Keras HDF5
weights file with h5py: the independent implementation the imported model is checked against.
It shares no code with the hub: its own HDF5 reader (h5py), its own preprocessing (Pillow, as
the seed does it), its own layers (im2col + matmul convolutions).

Usage: python3 numpy_resnet50.py WEIGHTS.h5 IMAGE...
Prints JSON: {"images": [{"file": ..., "probabilities": [1000 floats]}], "seconds_per_image": s}

The architecture is keras-applications' ResNet50 (resnet.py, ResNet50 = stack1 ×3,4,6,3),
read off the file's layer names (conv{S}_block{B}_...), so the same code runs the tiny test
ResNet: stem conv 7×7/2 after a 3-pixel zero pad, BN, ReLU, 1-pixel zero pad, max-pool 3×3/2;
bottleneck blocks (1×1 with the stage's stride, 3×3 'same', 1×1, plus a 1×1 shortcut conv in
each stage's first block), global average pool, dense, softmax. Keras layer names only (the
keras-applications naming).
"""
import json
import re
import sys
import time

import h5py
import numpy as np
from PIL import Image

BN_EPSILON = 1.001e-5
MEAN_BGR = np.array([103.939, 116.779, 123.68])


def text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def load_weights(path):
    weights = {}
    with h5py.File(path, "r") as f:
        root = f if "layer_names" in f.attrs else f["model_weights"]
        for name in (text(n) for n in root.attrs["layer_names"]):
            group = root[name]
            names = [text(n) for n in group.attrs.get("weight_names", [])]
            if names:
                weights[name] = [np.asarray(group[n], dtype=np.float64) for n in names]
    return weights


def conv(x, layer, stride=1, pad=0):
    """x: H×W×C; kernel HWIO (Keras); 'valid' after `pad` zeros on each side."""
    kernel, bias = layer
    if pad:
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw, cin, cout = kernel.shape
    h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    s0, s1, s2 = x.strides
    # im2col: every output pixel's kh×kw×cin input patch as one row, in the kernel's HWI order.
    patches = np.lib.stride_tricks.as_strided(x, shape=(oh, ow, kh, kw, cin), strides=(s0 * stride, s1 * stride, s0, s1, s2))
    cols = np.ascontiguousarray(patches).reshape(oh * ow, kh * kw * cin)
    return (cols @ kernel.reshape(kh * kw * cin, cout) + bias).reshape(oh, ow, cout)


def batch_norm(x, layer):
    gamma, beta, mean, variance = layer
    return (x - mean) / np.sqrt(variance + BN_EPSILON) * gamma + beta


def relu(x):
    return np.maximum(x, 0)


def max_pool_3x3_s2(x):
    h, w, c = x.shape
    oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    s0, s1, s2 = x.strides
    windows = np.lib.stride_tricks.as_strided(x, shape=(oh, ow, 3, 3, c), strides=(s0 * 2, s1 * 2, s0, s1, s2))
    return windows.max(axis=(2, 3))


def architecture(weights):
    """[(stage name, blocks)] in order, from the conv{S}_block{B}_* layer names."""
    blocks = {}
    for name in weights:
        m = re.match(r"^(conv\d+)_block(\d+)_", name)
        if m:
            blocks[m.group(1)] = max(blocks.get(m.group(1), 0), int(m.group(2)))
    return sorted(blocks.items(), key=lambda item: int(item[0][4:]))


def forward(weights, image):
    x = conv(image, weights["conv1_conv"], stride=2, pad=3)
    x = relu(batch_norm(x, weights["conv1_bn"]))
    x = max_pool_3x3_s2(np.pad(x, ((1, 1), (1, 1), (0, 0))))  # zeros: harmless after a ReLU
    for index, (stage, count) in enumerate(architecture(weights)):
        for b in range(1, count + 1):
            name = f"{stage}_block{b}"
            stride = 2 if index > 0 and b == 1 else 1
            if b == 1:
                shortcut = batch_norm(conv(x, weights[f"{name}_0_conv"], stride=stride), weights[f"{name}_0_bn"])
            else:
                shortcut = x
            y = relu(batch_norm(conv(x, weights[f"{name}_1_conv"], stride=stride), weights[f"{name}_1_bn"]))
            y = relu(batch_norm(conv(y, weights[f"{name}_2_conv"], pad=1), weights[f"{name}_2_bn"]))
            y = batch_norm(conv(y, weights[f"{name}_3_conv"]), weights[f"{name}_3_bn"])
            x = relu(shortcut + y)
    features = x.mean(axis=(0, 1))
    kernel, bias = weights["predictions"]
    logits = features @ kernel + bias
    e = np.exp(logits - logits.max())
    return e / e.sum()


def preprocess(path):
    """The seed's preprocessing: Pillow decode, RGB, resize to 224×224 (Pillow's default
    resample), float, RGB→BGR, minus the ImageNet BGR means (Keras 'caffe' mode)."""
    rgb = np.asarray(Image.open(path).convert("RGB").resize((224, 224)), dtype=np.float64)
    return rgb[:, :, ::-1] - MEAN_BGR


def main(weights_path, images):
    weights = load_weights(weights_path)
    started = time.time()
    results = [{"file": p, "probabilities": forward(weights, preprocess(p)).tolist()} for p in images]
    seconds = (time.time() - started) / max(1, len(images))
    json.dump({"images": results, "seconds_per_image": seconds}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
