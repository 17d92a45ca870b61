"""The dashboard's page, script and style (``static/``), shipped in the package and served by
the app itself at /dashboard (observe/routes.py): no CDN, no separate server."""
