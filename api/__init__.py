"""HTTP (FastAPI). Stateless: reads Redis through ``state``; writes only through Kafka.

Routes in ``api/routes/`` (they never import each other: shared work lives in modules
here, e.g. ``api/overview.py``, ``api/user_risk.py``); the console's pages in
``api/console/``; ``/docs`` served offline by ``api/docs.py``.

Imports: ``core``, ``state``.
"""
