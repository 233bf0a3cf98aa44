"""The Redis connections beside redis-py (which :func:`state.redis_store.connect` makes
for everything else):

- :mod:`~state.clients.resp`: the worker's hot-path connection, one plain-TCP RESP
  exchange per batch (MULTI/EXEC of pre-packed commands);
- :mod:`~state.clients.mux`: the API's multiplexed connection, many concurrent callers
  pipelined on one socket.
"""
