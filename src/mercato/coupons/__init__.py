"""Coupons (M8): percent or fixed discounts, store-wide, per publisher or per listing."""
