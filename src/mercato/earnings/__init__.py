"""Publisher earnings and payouts (M7)."""
