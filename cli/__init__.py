"""``churnstream``: the command line. It parses, checks the settings and the services a
command needs (:mod:`~cli.preflight`), and dispatches to the rooms that do the work
(:mod:`~cli.main`). It may import every room; no room imports it.
"""
