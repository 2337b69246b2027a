"""Market sources react to no events; importing this module declares the ``market.sync``
sweep (``sweep.py``), so every process that runs the scheduler follows the sources."""

from mercato.market import sweep

__all__ = ["sweep"]
