"""A listing's detail (``GET /listings/{id}`` and the storefront's listing page): a read model
above the domain modules that gathers the listing, its versions and its ratings, caches and
stores the result, and evicts it when any of them changes."""
