"""The seed's DEALER client with ZeroMQ CURVE: one JSON frame, encrypted, with the client's keys.

Usage: curve_dealer_client.py <endpoint> <image>
Keys (Z85) from the environment: CURVE_SERVER_KEY (the hub's public key), CURVE_PUBLIC_KEY and
CURVE_SECRET_KEY (this client's pair). RECEIVE_TIMEOUT_MS (default 60000): how long to wait
for the reply; without one, it prints {"timeout": true} and exits 3.
"""
import base64
import json
import os
import sys

import zmq

endpoint, image_path = sys.argv[1], sys.argv[2]
context = zmq.Context()
socket = context.socket(zmq.DEALER)
socket.curve_serverkey = os.environ["CURVE_SERVER_KEY"].encode("ascii")
socket.curve_publickey = os.environ["CURVE_PUBLIC_KEY"].encode("ascii")
socket.curve_secretkey = os.environ["CURVE_SECRET_KEY"].encode("ascii")
socket.setsockopt(zmq.RCVTIMEO, int(os.environ.get("RECEIVE_TIMEOUT_MS", "60000")))
socket.setsockopt(zmq.LINGER, 0)
socket.connect(endpoint)
with open(image_path, "rb") as f:
    socket.send_json({"payload": base64.b64encode(f.read()).decode("ascii")})
try:
    reply = socket.recv_json()
except zmq.Again:
    print(json.dumps({"timeout": True}))
    sys.exit(3)
print(json.dumps(reply))
