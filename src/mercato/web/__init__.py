"""The web pages: the storefront and the consoles (WEB.md), a second face of the same services.

``pages.py`` holds the shared machinery (templates, the page route class, security headers,
error pages), ``session.py`` the cookie sessions, ``csrf.py`` the form tokens. Each group of
pages is a router module (``storefront.py``, ``account.py``, …); ``site.py`` lists them and
installs them into the app.
See docs/web.md.
"""
