"""What a run costs: Runflow's own price for the model, asked once a day, else the published one.

Estimates and budgets use this price; what was spent is what each run reports as its `cost`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from runflow_bg.errors import RunflowBgError
from runflow_bg.fsutil import atomic_write_bytes, private_dir

PUBLISHED_PRICE = Decimal("0.35")  # the model page's price a request
FRESH_SECONDS = 24 * 3600
FREE = Decimal("0")


@dataclass(frozen=True)
class Price:
    """A price a run, and whether Runflow said it (now or within the day) or it is the fallback."""

    amount: Decimal
    reported: bool

    def notice(self, model: str) -> str | None:
        if self.reported:
            return None
        return (f"Runflow did not report a price for {model}; estimating with its published "
                f"${PUBLISHED_PRICE} a run")


def cost_of(text: str | None) -> Decimal | None:
    """A run's reported cost as a number, or None when it reports none (or nonsense)."""
    try:
        amount = Decimal(str(text)) if text is not None else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() and amount >= 0 else None


def _cached(cache_file: Path, model: str) -> Decimal | None:
    try:
        entry = json.loads(cache_file.read_text(encoding="utf-8"))[model]
        if time.time() - float(entry["at"]) < FRESH_SECONDS:
            return cost_of(entry["price"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def price_per_run(client, cache_file: Path, model: str) -> Price:
    """The price of one run: cached within the day; asked of Runflow when `client` is given
    (none for --dry-run, which makes no request); the published price otherwise."""
    cached = _cached(cache_file, model)
    if cached is not None:
        return Price(cached, True)
    if client is None:
        return Price(PUBLISHED_PRICE, False)
    try:
        amount = client.model_price(model)
    except RunflowBgError:
        amount = None
    if amount is None:
        return Price(PUBLISHED_PRICE, False)
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[model] = {"price": str(amount), "at": time.time()}
    try:
        private_dir(cache_file.parent)
        atomic_write_bytes(cache_file, json.dumps(data).encode(), 0o600)
    except OSError:
        pass  # a cache that cannot be written only costs one more request tomorrow
    return Price(amount, True)
