"""Mercato: a self-hostable marketplace server for software."""

__version__ = "0.1.0"
