"""The same request from a REQ socket, which adds the empty delimiter frame."""
import base64
import json
import sys

import zmq

endpoint, image_path = sys.argv[1], sys.argv[2]
context = zmq.Context()
socket = context.socket(zmq.REQ)
socket.setsockopt(zmq.RCVTIMEO, 60000)
socket.setsockopt(zmq.LINGER, 0)
socket.connect(endpoint)
with open(image_path, "rb") as f:
    socket.send_string(json.dumps({"payload": base64.b64encode(f.read()).decode("ascii")}))
frames = socket.recv_multipart()
assert len(frames) == 1, frames
print(frames[0].decode("utf-8"))
