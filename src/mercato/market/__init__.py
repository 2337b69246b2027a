"""Market sources (O6): mirror the catalogs of other Mercato stores, read-only, through their sync feed."""
