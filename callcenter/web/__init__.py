"""The server's web pages (QA review now; agent desk and wallboard later): static assets, no build step.

``callcenter.web.pages.mount_pages(app)`` serves each page at its path (``/qa``) and the assets under
``/static/``; the pages call the HTTP API with the helper in ``static/api.js``.
"""
