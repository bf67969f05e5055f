"""A client written as the seed's Python clients are: a DEALER socket, one JSON frame."""
import base64
import json
import sys

import zmq

endpoint, image_path = sys.argv[1], sys.argv[2]
context = zmq.Context()
socket = context.socket(zmq.DEALER)
socket.setsockopt(zmq.RCVTIMEO, 60000)
socket.setsockopt(zmq.LINGER, 0)
socket.connect(endpoint)
with open(image_path, "rb") as f:
    socket.send_json({"payload": base64.b64encode(f.read()).decode("ascii")})
reply = socket.recv_json()
print(json.dumps(reply))
