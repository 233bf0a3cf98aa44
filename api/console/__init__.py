"""The console for the people who act on churn: server-rendered pages (Jinja2 templates
in ``templates/``, our stylesheet in ``static/``), served by the API process on its own
port under ``/console``, behind the same API keys (a login page and a signed HttpOnly
cookie). Charts are drawn by plotly.js from the installed ``plotly`` wheel, never from a
CDN. Part of the ``api`` room: it imports what the API may (``core``, ``state``, ``api``).
"""
