"""The lab's built-in echo server, run in every pod without a ``command``: the pure
request -> response logic (``responses``) and its asyncio server (``server``)."""
