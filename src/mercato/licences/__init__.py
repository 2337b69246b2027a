"""Licences: per-listing pools of publisher-supplied keys (M12) and signed licence documents (L1)."""
