"""aimachine: verification tools for the appliance (benchmark, quality, report, GPU facts)."""

__version__ = "0.1.0"
