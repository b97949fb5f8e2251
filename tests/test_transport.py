"""The one retry layer: backoff, Retry-After, the shared 429 pause, deadlines and body caps.

httpx's MockTransport stands in for the network and a fake clock for time, so nothing here
sleeps: a body "dripped a byte a second" advances the fake clock by a second per chunk.
"""

from __future__ import annotations

import httpx
import pytest

from helpers import FakeClock
from runflow_bg.errors import ProtocolError, UnavailableError
from runflow_bg.transport import API_BODY_CAP, RetryPolicy, Transport

URL = "https://api.example/v1/thing"
POLICY = RetryPolicy(max_attempts=3, rate_limited_attempts=5, base_delay=1, max_delay=8,
                     jitter=0, max_retry_after=60)


def transport(handler, clock, attempt_seconds=30.0):
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Transport(http, POLICY, clock, attempt_seconds=attempt_seconds)


def answers(*responses):
    """A handler that gives these answers in turn, counting the requests."""
    queue = list(responses)
    seen = []

    def handler(request):
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    handler.seen = seen
    return handler


def test_5xx_is_retried_with_exponential_backoff():
    clock = FakeClock()
    handler = answers(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1}))
    reply = transport(handler, clock).request("GET", URL)
    assert reply.status_code == 200 and reply.json("thing") == {"ok": 1}
    assert clock.sleeps == [1, 2] and len(handler.seen) == 3


def test_other_4xx_is_never_retried():
    clock = FakeClock()
    handler = answers(httpx.Response(422, json={"code": "VALIDATION_ERROR"}))
    assert transport(handler, clock).request("GET", URL).status_code == 422
    assert clock.sleeps == [] and len(handler.seen) == 1


def test_retry_after_is_honoured_and_capped():
    clock = FakeClock()
    handler = answers(httpx.Response(503, headers={"Retry-After": "7"}),
                      httpx.Response(503, headers={"Retry-After": "1e9"}),
                      httpx.Response(200, json={}))
    transport(handler, clock).request("GET", URL)
    assert clock.sleeps == [7, 60]


def test_a_429_pauses_every_request_of_the_transport():
    clock = FakeClock()
    clock.sleep = clock.sleeps.append  # time stands still: the next request comes at once
    shared = transport(answers(httpx.Response(200, json={})), clock)
    shared.pause(1, retry_after=10, rate_limited=True)  # one worker's create met a 429
    shared.request("GET", URL)  # another worker's request waits out the same pause
    assert clock.sleeps == [10, 10]


def test_a_429_gets_more_patience_than_other_failures():
    clock = FakeClock()
    handler = answers(httpx.Response(429))
    reply = transport(handler, clock).request("GET", URL)
    assert reply.status_code == 429 and len(handler.seen) == POLICY.rate_limited_attempts


def test_a_single_attempt_is_one_request():
    clock = FakeClock()
    handler = answers(httpx.Response(429))
    assert transport(handler, clock).request("POST", URL, attempts=1).status_code == 429
    assert len(handler.seen) == 1 and clock.sleeps == []


def test_network_errors_end_as_unavailable_after_the_last_attempt():
    clock = FakeClock()

    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UnavailableError, match="refused or failed"):
        transport(handler, clock).request("GET", URL)
    assert clock.sleeps == [1, 2]


def test_a_dripping_body_is_cut_off_at_the_attempt_deadline():
    clock = FakeClock()
    chunks_sent = []

    def drip():
        for _ in range(1000):
            clock.time += 1.0  # a byte a second
            chunks_sent.append(1)
            yield b"x"

    def handler(request):
        return httpx.Response(200, stream=_Stream(drip()))

    with pytest.raises(UnavailableError, match="timed out waiting for an answer"):
        transport(handler, clock, attempt_seconds=3).request("GET", URL)
    # each of the three attempts stops at the first chunk past its three seconds
    assert len(chunks_sent) == 3 * 4


def test_the_callers_deadline_stops_retrying():
    clock = FakeClock()
    handler = answers(httpx.Response(503))
    with pytest.raises(UnavailableError, match="time allowed ran out"):
        transport(handler, clock).request("GET", URL, deadline=1.5)
    assert clock.sleeps == [1] and len(handler.seen) == 2


def test_an_api_body_over_the_cap_is_refused():
    clock = FakeClock()

    def big():
        for _ in range(API_BODY_CAP // (1024 * 1024) + 1):
            yield b"x" * (1024 * 1024)

    def handler(request):
        return httpx.Response(200, stream=_Stream(big()))

    with pytest.raises(ProtocolError, match="over 16 MiB"):
        transport(handler, clock).request("GET", URL)


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        yield from self._chunks


def test_an_honestly_gzipped_output_is_saved_decoded():
    import gzip
    import io

    from runflow_bg.transfers import download

    image = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 5000
    packed = gzip.compress(image)

    def handler(request):
        return httpx.Response(200, stream=_Stream(iter([packed[:100], packed[100:]])), headers={
            "Content-Type": "image/webp", "Content-Encoding": "gzip",
            "Content-Length": str(len(packed))})

    sink = io.BytesIO()
    fetched = download(transport(handler, FakeClock()), "https://cdn.example/1.webp", sink)
    assert sink.getvalue() == image and fetched.size == len(image)
    assert fetched.content_type == "image/webp" and fetched.head.startswith(b"RIFF")


def test_each_thread_keeps_to_one_lane_and_the_lanes_are_shared_out():
    import threading

    served: dict[int, set[str]] = {}
    lock = threading.Lock()

    def lane(name):
        def handler(request):
            with lock:
                served.setdefault(threading.get_ident(), set()).add(name)
            return httpx.Response(200, json={})
        return httpx.Client(transport=httpx.MockTransport(handler))

    shared = Transport([lane("a"), lane("b")], POLICY, FakeClock(), attempt_seconds=30.0)
    start = threading.Barrier(4)

    def work():
        start.wait()  # all four alive at once, so none reuses another's thread id
        for _ in range(3):
            assert shared.request("GET", URL).status_code == 200

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(served) == 4
    assert all(len(lanes) == 1 for lanes in served.values())
    assert sorted(name for lanes in served.values() for name in lanes) == ["a", "a", "b", "b"]
