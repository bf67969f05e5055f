"""A client of several resnet-hub hubs, with pyzmq alone (Debian's python3-zmq works).

The same behaviour as the TypeScript client (client/hub-client.ts): one DEALER per hub; each
request goes to the available hub with the fewest outstanding; an ``overloaded``,
``shutting_down`` or ``not_ready`` answer, a dropped connection, or silence past the per-try
timeout sends it to another hub, until the request's own deadline. Every send carries an id of
the client's own, so the first final answer is handed back and any later one dropped. A host
name is resolved to every address it has (libzmq would connect to the first only), again every
``resolve_interval`` seconds. The wire format is the seed's: hubs need nothing new.

    client = HubClient(["tcp://hub-a:5576", "tcp://hub-b:5576"])
    result = client.classify(open("cat.jpg", "rb").read())
    print(result.reply["preds"] if result.ok else result.error)
    client.close()

Single-threaded: the client works only inside classify() / classify_many(). Not thread-safe.
"""

import base64
import ipaddress
import json
import os
import re
import socket
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

RETRYABLE = ("overloaded", "shutting_down", "not_ready")
MAX_WIRE_DEADLINE_MS = 3_600_000
WAIT_POLL = 0.05
SEND_FAILURE_COOL = 0.05
_TCP = re.compile(r"^tcp://(\[[^\]]+\]|[^:/]+):(\d+)$")


def system_resolver(host):
    """Every address of a host name, as getaddrinfo (and so libzmq) sees it."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


def split_endpoints(endpoints):
    """'tcp://a:1,tcp://b:1' or a list of such strings, as one flat list without repeats."""
    items = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    parts = [part.strip() for item in items for part in item.split(",")]
    return list(dict.fromkeys(part for part in parts if part))


def _parse_tcp(endpoint):
    match = _TCP.match(endpoint)
    if not match:
        return None
    host = match.group(1)
    return (host[1:-1] if host.startswith("[") else host), match.group(2)


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _tcp_endpoint(address, port):
    return "tcp://[%s]:%s" % (address, port) if ":" in address else "tcp://%s:%s" % (address, port)


class Result:
    """One request's outcome: ``ok`` with the hub's ``reply``, or ``error`` {code, message}.

    ``reply`` is also set on errors a hub answered; the client's own errors (``timeout``,
    ``closed``) have none. ``request_id`` in the reply is the caller's own.
    """

    def __init__(self, ok, reply=None, error=None, endpoint=None, attempts=0, seconds=0.0):
        self.ok, self.reply, self.error = ok, reply, error
        self.endpoint, self.attempts, self.seconds = endpoint, attempts, seconds

    def __repr__(self):
        what = self.reply.get("preds") if self.ok else self.error
        return "Result(ok=%r, %r, endpoint=%r, attempts=%d)" % (self.ok, what, self.endpoint, self.attempts)


class _Hub:
    def __init__(self, context, endpoint, heartbeat, curve):
        self.endpoint = endpoint
        self.connected = False
        self.mode = "active"  # or draining (said shutting_down), retired (no longer resolved)
        self.cool_until = 0.0
        self.live = set()
        self.hub_id = None
        self.counts = {"sent": 0, "results": 0, "silences": 0, "disconnects": 0, "dropped": 0}
        self.errors, self.refusals = {}, {}
        self.socket = context.socket(zmq.DEALER)
        # Queue only on a live connection: a send to a hub that is down fails at once.
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        if heartbeat:
            ms = int(heartbeat * 1000)
            self.socket.setsockopt(zmq.HEARTBEAT_IVL, ms)
            self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, ms * 3)
            self.socket.setsockopt(zmq.HEARTBEAT_TTL, ms * 3)
        if curve:
            self.socket.curve_serverkey = curve["server_key"].encode()
            self.socket.curve_publickey = curve["public_key"].encode()
            self.socket.curve_secretkey = curve["secret_key"].encode()
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.socket.connect(endpoint)

    def available(self, now):
        return self.connected and self.mode == "active" and now >= self.cool_until

    def stats(self):
        stats = dict(self.counts, endpoint=self.endpoint, connected=self.connected, mode=self.mode,
                     outstanding=len(self.live), errors=dict(self.errors), refusals=dict(self.refusals))
        if self.hub_id is not None:
            stats["hub_id"] = self.hub_id
        return stats

    def close(self):
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


class _Pending:
    def __init__(self, seq, head, caller_id, started, deadline_at):
        self.seq, self.head, self.caller_id = seq, head, caller_id
        self.started, self.deadline_at = started, deadline_at
        self.sends = 0
        self.live = {}  # send id -> _Hub
        self.avoid = set()
        self.last_refusal = None
        self.try_at = None
        self.try_hub = None
        self.result = None


class HubClient:
    """Spreads requests over several hubs; see the module's docstring."""

    def __init__(self, endpoints, resolver=system_resolver, resolve_interval=5.0, deadline=60.0,
                 per_try_timeout=10.0, overload_backoff=0.1, not_ready_backoff=0.5, heartbeat=2.0,
                 curve=None, context=None):
        self._endpoints = split_endpoints(endpoints)
        if not self._endpoints:
            raise ValueError("no hub endpoint given")
        for endpoint in self._endpoints:
            if not _parse_tcp(endpoint) and not re.match(r"^(ipc|inproc)://.+", endpoint):
                raise ValueError("bad hub endpoint %r: expected tcp://host:port" % endpoint)
        self._resolver, self._resolve_interval = resolver, resolve_interval
        self._deadline, self._per_try = deadline, per_try_timeout
        self._overload_backoff, self._not_ready_backoff = overload_backoff, not_ready_backoff
        self._heartbeat, self._curve = heartbeat, curve
        self._context = context or zmq.Context.instance()
        self._hubs = {}
        self._resolved = {}
        self._last_resolve_error = None
        self._next_resolve = 0.0
        self._by_send = {}
        self._open = set()
        self._tag = os.urandom(4).hex()
        self._seq = 0
        self._turn = 0
        self._closed = False
        self._totals = {"requests": 0, "results": 0, "errors": 0, "resends": 0}
        self.refresh()

    # -- public ---------------------------------------------------------------------------

    def classify(self, image, top=None, request_id=None, deadline=None, offload=None):
        """Classifies one image (bytes, or base64 text); returns a Result, never raises for the hub's answers."""
        return self.classify_many([image], concurrency=1, top=top, request_ids=[request_id], deadline=deadline, offload=offload)[0]

    def classify_many(self, images, concurrency=16, top=None, request_ids=None, deadline=None, offload=None):
        """Classifies images with up to ``concurrency`` in flight; Results in the order given."""
        images = list(images)
        results = [None] * len(images)
        started = {}
        next_index = 0
        while next_index < len(images) or started:
            while next_index < len(images) and len(started) < concurrency:
                caller_id = request_ids[next_index] if request_ids else None
                pending = self._start(images[next_index], top, caller_id, deadline, offload)
                started[pending] = next_index
                next_index += 1
            self._pump(min([p.deadline_at for p in started] + [time.monotonic() + 1.0]))
            for pending in [p for p in started if p.result is not None]:
                results[started.pop(pending)] = pending.result
        return results

    def stats(self):
        return dict(self._totals, waiting=sum(1 for p in self._open if not p.live),
                    hubs=[hub.stats() for hub in self._hubs.values()])

    def refresh(self):
        """Resolves the configured names now; a name that fails keeps the hubs it had."""
        self._next_resolve = time.monotonic() + self._resolve_interval if self._resolve_interval else float("inf")
        for endpoint in self._endpoints:
            tcp = _parse_tcp(endpoint)
            if not tcp or _is_address(tcp[0]):
                self._resolved[endpoint] = [endpoint]
                continue
            try:
                self._resolved[endpoint] = [_tcp_endpoint(a, tcp[1]) for a in self._resolver(tcp[0])]
            except Exception as error:  # noqa: BLE001 - any resolver failure keeps the last answer
                self._last_resolve_error = "%s: %s" % (endpoint, error)
        wanted = {e for resolved in self._resolved.values() for e in resolved}
        for endpoint in wanted:
            hub = self._hubs.get(endpoint)
            if hub is None:
                self._hubs[endpoint] = _Hub(self._context, endpoint, self._heartbeat, self._curve)
            elif hub.mode == "retired":
                hub.mode = "active"
        for hub in list(self._hubs.values()):
            if hub.endpoint not in wanted:
                hub.mode = "retired"
                self._close_if_idle(hub)

    def close(self):
        """Answers every open request with ``closed`` and closes the sockets."""
        if self._closed:
            return
        self._closed = True
        for pending in list(self._open):
            self._settle(pending, Result(False, error={"code": "closed", "message": "the client was closed"},
                                         attempts=pending.sends, seconds=time.monotonic() - pending.started))
        for hub in self._hubs.values():
            hub.close()
        self._hubs.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests -------------------------------------------------------------------------

    def _start(self, image, top, caller_id, deadline, offload):
        self._totals["requests"] += 1
        payload = image if isinstance(image, str) else base64.b64encode(image).decode("ascii")
        body = {"payload": payload}
        if top is not None:
            body["top"] = top
        if offload is not None:
            body["offload"] = offload
        now = time.monotonic()
        self._seq += 1
        pending = _Pending(self._seq, json.dumps(body)[:-1], caller_id, now, now + (deadline or self._deadline))
        self._open.add(pending)
        self._dispatch(pending)
        return pending

    def _pick(self, pending, now):
        busy = set(pending.live.values())
        usable = [h for h in self._hubs.values() if h.available(now) and h not in busy]
        fresh = [h for h in usable if h not in pending.avoid]
        candidates = fresh or usable
        if not candidates:
            return None
        fewest = min(len(h.live) for h in candidates)
        tied = [h for h in candidates if len(h.live) == fewest]
        self._turn += 1
        return tied[self._turn % len(tied)]

    def _dispatch(self, pending):
        while pending.result is None and not self._closed:
            now = time.monotonic()
            remaining = pending.deadline_at - now
            if remaining <= 0:
                return self._expire(pending)
            hub = self._pick(pending, now)
            if hub is None:
                return  # waits: _pump tries again when a hub comes up or cools down
            send_id = "%s.%d.%d" % (self._tag, pending.seq, pending.sends + 1)
            wire_deadline = min(MAX_WIRE_DEADLINE_MS, max(1, int(remaining * 1000)))
            frame = '%s,"request_id":%s,"deadline_ms":%d}' % (pending.head, json.dumps(send_id), wire_deadline)
            try:
                hub.socket.send_string(frame, zmq.NOBLOCK)
            except zmq.Again:
                # Not connected after all (its drop not seen yet): elsewhere, at once.
                hub.cool_until = now + SEND_FAILURE_COOL
                continue
            pending.sends += 1
            if pending.sends > 1:
                self._totals["resends"] += 1
            hub.counts["sent"] += 1
            pending.live[send_id] = hub
            hub.live.add(send_id)
            self._by_send[send_id] = pending
            pending.try_at = now + min(self._per_try, remaining)
            pending.try_hub = hub
            return

    def _on_message(self, hub, body):
        try:
            reply = json.loads(body)
        except ValueError:
            hub.counts["dropped"] += 1
            return
        if isinstance(reply.get("hub"), dict) and "id" in reply["hub"]:
            hub.hub_id = reply["hub"]["id"]
        send_id = reply.get("request_id")
        pending = self._by_send.get(send_id)
        if pending is None:
            hub.counts["dropped"] += 1  # answered already by another hub, or not ours
            return
        self._release(send_id)
        self._with_caller_id(reply, pending)
        error = reply.get("error")
        if error is None:
            hub.counts["results"] += 1
            return self._settle(pending, self._result(pending, hub, True, reply=reply))
        code = error.get("code")
        if code in RETRYABLE:
            hub.refusals[code] = hub.refusals.get(code, 0) + 1
            now = time.monotonic()
            if code == "shutting_down":
                hub.mode = "retired" if hub.mode == "retired" else "draining"
            elif code == "overloaded":
                hub.cool_until = now + self._overload_backoff
            else:
                hub.cool_until = now + self._not_ready_backoff
            pending.avoid.add(hub)
            pending.last_refusal = (reply, hub.endpoint)
            if not pending.live:
                self._dispatch(pending)
            return
        hub.errors[code] = hub.errors.get(code, 0) + 1
        self._settle(pending, self._result(pending, hub, False, reply=reply, error=error))

    def _on_event(self, hub, event):
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            hub.connected = True
            if hub.mode == "draining":
                hub.mode = "active"  # a new process (or the same after a blip)
            hub.cool_until = 0.0
        elif event == zmq.EVENT_DISCONNECTED:
            hub.connected = False
            hub.counts["disconnects"] += 1
            # Nothing sent on a dropped connection will be answered: elsewhere, now.
            orphans = {self._by_send[s] for s in hub.live if s in self._by_send}
            for send_id in list(hub.live):
                self._release(send_id)
            for pending in orphans:
                pending.avoid.add(hub)
                if not pending.live:
                    self._dispatch(pending)

    def _on_silence(self, pending, now):
        hub = pending.try_hub
        hub.counts["silences"] += 1
        pending.avoid.add(hub)
        sends_before = pending.sends
        self._dispatch(pending)
        if pending.sends == sends_before and pending.result is None:
            pending.try_at = now + min(self._per_try, max(0.0, pending.deadline_at - now))

    def _expire(self, pending):
        seconds = time.monotonic() - pending.started
        if pending.last_refusal and not pending.live:
            reply, endpoint = pending.last_refusal
            return self._settle(pending, Result(False, reply=reply, error=reply["error"], endpoint=endpoint,
                                                attempts=pending.sends, seconds=seconds))
        if not self._hubs:
            why = "no hub known"
        elif any(h.connected for h in self._hubs.values()):
            why = "no answer in time from %d send(s)" % pending.sends
        else:
            why = "no hub reachable (%d known)" % len(self._hubs)
        if self._last_resolve_error:
            why += "; last resolution failure: " + self._last_resolve_error
        message = "no result within %d ms: %s" % (round((pending.deadline_at - pending.started) * 1000), why)
        self._settle(pending, Result(False, error={"code": "timeout", "message": message}, attempts=pending.sends, seconds=seconds))

    def _settle(self, pending, result):
        if pending.result is not None:
            return
        pending.result = result
        self._open.discard(pending)
        for send_id in list(pending.live):
            self._release(send_id)
        self._totals["results" if result.ok else "errors"] += 1

    def _release(self, send_id):
        pending = self._by_send.pop(send_id, None)
        hub = pending.live.pop(send_id, None) if pending else None
        if hub is not None:
            hub.live.discard(send_id)
            self._close_if_idle(hub)

    def _close_if_idle(self, hub):
        if hub.mode == "retired" and not hub.live and self._hubs.get(hub.endpoint) is hub:
            del self._hubs[hub.endpoint]
            hub.close()

    def _result(self, pending, hub, ok, reply=None, error=None):
        return Result(ok, reply=reply, error=error, endpoint=hub.endpoint, attempts=pending.sends,
                      seconds=time.monotonic() - pending.started)

    @staticmethod
    def _with_caller_id(reply, pending):
        if pending.caller_id is None:
            reply.pop("request_id", None)
        else:
            reply["request_id"] = pending.caller_id

    # -- the loop -------------------------------------------------------------------------

    def _pump(self, until):
        """Handles replies, connection events and timers until ``until`` (monotonic) or some request settles."""
        settled_before = self._totals["results"] + self._totals["errors"]
        while not self._closed:
            now = time.monotonic()
            if now >= self._next_resolve:
                self.refresh()
            for pending in list(self._open):
                if now >= pending.deadline_at:
                    self._expire(pending)
                elif pending.try_at is not None and pending.live and now >= pending.try_at:
                    self._on_silence(pending, now)
                elif not pending.live:
                    self._dispatch(pending)
            if self._totals["results"] + self._totals["errors"] > settled_before or now >= until:
                return
            waiting = any(not p.live for p in self._open)
            wake = min([until, self._next_resolve] + [p.try_at for p in self._open if p.try_at is not None and p.live]
                       + [p.deadline_at for p in self._open])
            if waiting:
                wake = min(wake, now + WAIT_POLL)
            poller = zmq.Poller()
            hubs = list(self._hubs.values())
            for hub in hubs:
                poller.register(hub.socket, zmq.POLLIN)
                poller.register(hub.monitor, zmq.POLLIN)
            ready = dict(poller.poll(max(0, int((wake - time.monotonic()) * 1000)) + 1))
            for hub in hubs:
                if hub.socket.closed:
                    continue  # retired and closed while handling another hub's messages
                while hub.monitor in ready and not self._closed:
                    try:
                        event = recv_monitor_message(hub.monitor, zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on_event(hub, event["event"])
                while hub.socket in ready and not self._closed:
                    try:
                        frames = hub.socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on_message(hub, frames[-1])
