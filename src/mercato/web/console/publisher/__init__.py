"""The publisher console (U2), one page module per job: :mod:`.overview` (charts over time),
:mod:`.listings` (create, edit with a Markdown preview, delist, relist), :mod:`.versions` (upload
with a progress bar, submit, appeal, yank), :mod:`.licence_keys`, :mod:`.orders`, :mod:`.earnings`,
:mod:`.coupons`, :mod:`.members` and :mod:`.webhooks`; :mod:`.common` holds what they share.

Members of the publisher (``own``) and admins (``any``), through the services of the API routes
and their permissions. Each module's router serves ``/console/publisher/{slug}/…``.
"""
