"""Helpers and fixtures shared by the test folders (``tests/README.md``): test modules import
them from here, never from another ``test_*.py`` module or a ``conftest.py``."""
