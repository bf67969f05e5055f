#!/usr/bin/env python3
"""Classify images with one hub or several, as `npm run classify` does, with resnet_hub_client.

    python3 client/python/example.py --endpoint tcp://hub-a:5576,tcp://hub-b:5576 cat.jpg dog.jpg

Prints one JSON line per image (the hub's reply, with "file"), in the order given, and a
summary per hub on stderr. Exits 0 only when every image got a result.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_hub_client import HubClient  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--endpoint", default=os.environ.get("HUB_ENDPOINT", "tcp://127.0.0.1:5576"),
                        help="hub endpoints, comma-separated; a host name stands for all its addresses")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="each image's deadline, in seconds")
    parser.add_argument("--try-timeout", type=float, default=10.0, help="silence that sends an image to another hub too")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    started = time.monotonic()
    with HubClient(args.endpoint, deadline=args.timeout, per_try_timeout=args.try_timeout) as client:
        images = []
        for path in args.images:
            with open(path, "rb") as f:
                images.append(f.read())
        results = client.classify_many(images, concurrency=args.concurrency, top=args.top,
                                       request_ids=[str(i) for i in range(len(images))])
        stats = client.stats()
    for path, result in zip(args.images, results):
        line = dict(result.reply) if result.reply is not None else {"error": result.error}
        print(json.dumps(dict(line, file=path)))
    by_hub = ", ".join("%s %d" % (hub.get("hub_id", hub["endpoint"]), hub["results"]) for hub in stats["hubs"])
    ok = sum(1 for r in results if r.ok)
    print("%d/%d images classified in %.1f s; results by hub: %s; resends: %d"
          % (ok, len(results), time.monotonic() - started, by_hub or "none", stats["resends"]), file=sys.stderr)
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
