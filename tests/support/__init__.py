"""Helpers shared by test folders (never imported from ``test_*.py`` modules of another folder)."""
