"""An Open Inference Protocol (KServe v2) gRPC client written from the specification alone:
stubs generated now, with grpc_tools, from the .proto named on the command line, and nothing of
the hub's code. Used by the tests as an independent client.

usage: open_inference_grpc_client.py PROTO TARGET TOKEN IMAGE...

Prints one JSON object: for each way of sending (raw, typed) the model version, each image's top 3
entries ("<p>:<index>:<label>") and every class's probability; and the status codes of requests
the specification says are errors.
"""

import json
import os
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc


def generate_stubs(proto):
    out = tempfile.mkdtemp(prefix="oip-stubs-")
    folder, name = os.path.split(os.path.abspath(proto))
    code = protoc.main(["protoc", f"-I{folder}", f"--python_out={out}", f"--grpc_python_out={out}", os.path.join(folder, name)])
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, out)
    module = os.path.splitext(name)[0]
    return __import__(f"{module}_pb2"), __import__(f"{module}_pb2_grpc")


def main():
    proto, target, token, *paths = sys.argv[1:]
    pb, pb_grpc = generate_stubs(proto)
    images = [open(path, "rb").read() for path in paths]
    metadata = [("authorization", f"Bearer {token}")]
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)

    def request(raw, classification=None, model="resnet50", datatype="BYTES"):
        message = pb.ModelInferRequest(model_name=model, id="from-python")
        tensor = message.inputs.add(name="image", datatype=datatype, shape=[len(images)])
        if raw:
            message.raw_input_contents.append(b"".join(struct.pack("<I", len(image)) + image for image in images))
        else:
            tensor.contents.bytes_contents.extend(images)
        output = message.outputs.add(name="probabilities")
        if classification is not None:
            output.parameters["classification"].int64_param = classification
        return message

    def entries(response):
        if response.raw_output_contents:
            data, found, at = response.raw_output_contents[0], [], 0
            while at < len(data):
                (length,) = struct.unpack_from("<I", data, at)
                found.append(data[at + 4 : at + 4 + length].decode())
                at += 4 + length
            return found
        return [element.decode() for element in response.outputs[0].contents.bytes_contents]

    def floats(response):
        if response.raw_output_contents:
            data = response.raw_output_contents[0]
            return list(struct.unpack(f"<{len(data) // 4}f", data))
        return list(response.outputs[0].contents.fp32_contents)

    result = {"live": stub.ServerLive(pb.ServerLiveRequest(), metadata=metadata).live}
    result["extensions"] = list(stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=metadata).extensions)
    for way in ("raw", "typed"):
        raw = way == "raw"
        top = stub.ModelInfer(request(raw, classification=3), metadata=metadata, timeout=60)
        full = stub.ModelInfer(request(raw), metadata=metadata, timeout=60)
        assert list(top.outputs[0].shape) == [len(images), 3], top.outputs[0].shape
        assert list(full.outputs[0].shape) == [len(images), 1000], full.outputs[0].shape
        values = floats(full)
        result[way] = {
            "model_version": top.model_version,
            "id": top.id,
            "raw_outputs": len(top.raw_output_contents) > 0,
            "entries": entries(top),
            "probabilities": [values[i * 1000 : (i + 1) * 1000] for i in range(len(images))],
        }

    def status_of(call):
        try:
            call()
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    result["errors"] = {
        "unknown_model": status_of(lambda: stub.ModelInfer(request(True, 3, model="resnet18"), metadata=metadata, timeout=30)),
        "fp32_images": status_of(lambda: stub.ModelInfer(request(True, 3, datatype="FP32"), metadata=metadata, timeout=30)),
        "no_token": status_of(lambda: stub.ModelInfer(request(True, 3), timeout=30)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
