"""runflow-bg: replace the background of product photos through Runflow.

    from runflow_bg import Runflow
    Runflow().replace("photo.png", "scene.png", out="out").paths

`Runflow` is imported when first asked for, so that the command line starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["DeliveryChoice", "Progress", "Runflow", "RunflowBgError", "__version__"]

if TYPE_CHECKING:
    from runflow_bg.api import Progress, Runflow
    from runflow_bg.choices import DeliveryChoice
    from runflow_bg.errors import RunflowBgError


def __getattr__(name: str):
    if name in ("Runflow", "Progress"):
        from runflow_bg import api

        return getattr(api, name)
    if name == "DeliveryChoice":
        from runflow_bg.choices import DeliveryChoice

        return DeliveryChoice
    if name == "RunflowBgError":
        from runflow_bg.errors import RunflowBgError

        return RunflowBgError
    raise AttributeError(f"module 'runflow_bg' has no attribute {name!r}")
