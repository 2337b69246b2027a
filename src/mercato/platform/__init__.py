"""What every module runs on: the store's long-lived objects (:mod:`~mercato.platform.runtime`),
the route that owns the request's transaction (:mod:`~mercato.platform.routing`) and
idempotency keys (:mod:`~mercato.platform.idempotency`). Above ``kit`` and ``models``, below
the bus and the domain modules; the composition root (``mercato.app``, ``mercato.app.runtime``,
``mercato.app.bootstrap``) wires it. See docs/architecture.md."""
