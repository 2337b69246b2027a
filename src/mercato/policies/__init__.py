"""Runtime store policies (PRODUCT O4): commission, refund window, order timeout, limits."""
