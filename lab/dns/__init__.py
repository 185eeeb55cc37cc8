"""The lab's node-local cluster DNS: the pure name table (``table``), the UDP/TCP server
(``server``) and the process each lab node runs (``process``)."""
