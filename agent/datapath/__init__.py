"""Tulle's eBPF datapath, seen from Python.

- ``bpf_loader``: compile ``bpf/*.c`` with BCC, load programs, pin maps, probe kernel features
- ``testrun``: run a loaded program on a packet through BPF_PROG_TEST_RUN (no interfaces)
- ``drop_reasons``: drop codes and texts, read from ``bpf/lib/drop.h``
- ``cdefs``: the small reader of C enums that keeps numbers defined once, in C
- ``features``: which program types, hooks, maps and helpers this kernel offers
- ``native``: ctypes bindings to libbpf.so.1
- ``programs``: the node's datapath; ``templates`` (the compile cache) adopts pinned programs
  without BCC, serving maps as ``kerneltable`` tables typed by ``tabletypes`` (``bpfinfo``:
  what the kernel says about a program or map; ``csource``: the C text BCC compiles)

Importing this package imports nothing heavy; ``bpf_loader`` is the module that needs BCC, and
``programs`` imports it only when it compiles.
"""
