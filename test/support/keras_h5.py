"""Writes a Keras-layout HDF5 weights file with h5py, the way Keras itself does
(keras/saving/hdf5_format.py: save_weights_to_hdf5_group, save_attributes_to_hdf5_group).

Usage: python3 keras_h5.py SPEC.json WEIGHTS.bin OUT.h5

SPEC.json:
  {"layout": "weights" | "full-model",
   "strings": "bytes" | "str",        # name lists as fixed-length byte strings (Keras) or str
   "layers": [{"name": "conv1_conv",
               "weight_names": ["conv1_conv/kernel:0", "conv1_conv/bias:0"],
               "weights": [{"shape": [7, 7, 3, 64], "offset": 0}, ...]}, ...]}
WEIGHTS.bin: float32 little-endian values; each weight at its byte offset, C order.
Layers without weights (activations, pads, pools) are listed with empty weight_names, as
Keras lists them.
"""
import json
import sys

import h5py
import numpy as np


def names(values, strings):
    if strings == "bytes":
        return [v.encode("utf8") for v in values]
    return list(values)


def main(spec_path, weights_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    blob = np.fromfile(weights_path, dtype="<f4")
    strings = spec.get("strings", "bytes")
    with h5py.File(out_path, "w") as f:
        if spec["layout"] == "full-model":
            # A full model file: config at the root, weights under model_weights.
            f.attrs["keras_version"] = b"2.13.1"
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {"name": "resnet50"}}).encode("utf8")
            root = f.create_group("model_weights")
        else:
            root = f
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.13.1"
        root.attrs["layer_names"] = names([layer["name"] for layer in spec["layers"]], strings)
        for layer in spec["layers"]:
            g = root.create_group(layer["name"])
            # Keras writes the (possibly empty) list as is; h5py turns [] into an empty float array.
            g.attrs["weight_names"] = names(layer["weight_names"], strings)
            for name, weight in zip(layer["weight_names"], layer["weights"]):
                shape = tuple(weight["shape"])
                count = int(np.prod(shape)) if shape else 1
                start = weight["offset"] // 4
                value = blob[start:start + count].reshape(shape)
                dset = g.create_dataset(name, shape, dtype="float32")
                if shape:
                    dset[:] = value
                else:
                    dset[()] = value


if __name__ == "__main__":
    main(*sys.argv[1:4])
