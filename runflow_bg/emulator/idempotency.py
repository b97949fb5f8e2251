"""The Idempotency-Key middleware: a key seen before with the same body gets its first answer again."""

from __future__ import annotations

import copy
import hashlib
import threading
from typing import Callable

from runflow_bg.emulator.wire import Reject, api_error


class IdempotencyKeys:
    """Each key's first answer and a hash of its raw body, kept as long as the emulator runs.

    One lock is held across look-up and create, so concurrent requests with one key make one run;
    creates take a millisecond, so serialising keyed ones costs nothing here. An answer that
    failed (raised) is not kept: the key stays free for the next attempt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str, dict]] = {}

    def once(self, key: str, body: bytes, create: Callable[[], dict]) -> dict:
        """The answer `create` gave the first request with this key and body; 409 for another body."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            if key in self._answers:
                seen, answer = self._answers[key]
                if seen != digest:
                    raise Reject(api_error(409, "CONFLICT", "This Idempotency-Key was already used "
                                                            "with a different request body."))
            else:
                answer = create()
                self._answers[key] = (digest, answer)
            return copy.deepcopy(answer)
