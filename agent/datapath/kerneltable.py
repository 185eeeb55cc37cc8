"""A BPF map as a Python mapping over its fd, through libbpf: the part of BCC's table API the
agent uses (``Key``, ``Leaf``, ``map_fd``, ``max_entries``, ``[]``, ``del``, ``get``,
``keys``, ``items``, ``values``, ``clear``, ``getvalue`` on per-CPU maps), for a datapath
adopted from its pins without BCC (``templates``).

It behaves as BCC 0.26's classes do, errors included, because callers rely on them: a missing
key raises ``KeyError``; a refused update raises ``Exception("Could not update table: ...")``
(the applier tells a full map by these words); arrays take int keys, iterate over every index
and zero an entry on ``del``; a per-CPU map's ``Leaf`` is one value per possible CPU.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, MutableMapping
from typing import Any

from agent.datapath.native import failure, libbpf
from agent.datapath.tabletypes import per_cpu_leaf

# uapi enum bpf_map_type values Tulle's maps use
HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LPM_TRIE, LRU_HASH, LRU_PERCPU_HASH, RINGBUF = (
    1, 2, 5, 6, 11, 9, 10, 27)
ARRAYS = (ARRAY, PERCPU_ARRAY)
PER_CPU = (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH)

libbpf.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libbpf.bpf_map_lookup_elem.restype = ctypes.c_int
libbpf.bpf_map_update_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_uint64]
libbpf.bpf_map_update_elem.restype = ctypes.c_int
libbpf.bpf_map_get_next_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libbpf.bpf_map_get_next_key.restype = ctypes.c_int


class KernelTable(MutableMapping[Any, Any]):
    """Map ``name`` (fd ``map_fd``, owned by the datapath that made this) with BCC's types.

    ``map_fd`` is -1 for a table no program uses (``flow_event_layout``, kept for its type):
    its ``Key``/``Leaf`` work, reading or writing it raises."""

    def __init__(self, name: str, map_fd: int, map_type: int, key: Any, leaf: Any,
                 max_entries: int, flags: int, cpus: int) -> None:
        self.name = name
        self.map_fd = map_fd
        self.ttype = map_type
        self.Key = key
        self.sLeaf = leaf
        self.Leaf = per_cpu_leaf(leaf, cpus) if map_type in PER_CPU else leaf
        self.max_entries = max_entries
        self.flags = flags
        self.total_cpu = cpus

    def _fd(self) -> int:
        if self.map_fd < 0:
            raise KeyError(f"table {self.name} has no map: no program uses it (types only)")
        return self.map_fd

    def _key(self, key: Any) -> Any:
        if self.ttype not in ARRAYS:
            return key
        if isinstance(key, int):
            key = self.Key(key + self.max_entries if key < 0 else key)
        if not isinstance(key, ctypes._SimpleCData):
            raise IndexError("Array index must be an integer type")
        if key.value >= self.max_entries:
            raise IndexError("Array index out of range")
        return key

    def __getitem__(self, key: Any) -> Any:
        leaf = self.Leaf()
        ret = libbpf.bpf_map_lookup_elem(self._fd(), ctypes.byref(self._key(key)),
                                         ctypes.byref(leaf))
        if ret < 0:
            raise KeyError(key)
        return leaf

    def getvalue(self, key: Any) -> Any:
        """A per-CPU map's value: one ``sLeaf`` per CPU (BCC's ``getvalue``)."""
        value = self[key]
        if self.Leaf is self.sLeaf or ctypes.sizeof(self.sLeaf) % 8 == 0:
            return value
        out = (self.sLeaf * self.total_cpu)()
        for cpu in range(self.total_cpu):
            out[cpu] = value[cpu]
        return out

    def __setitem__(self, key: Any, leaf: Any) -> None:
        ret = libbpf.bpf_map_update_elem(self._fd(), ctypes.byref(self._key(key)),
                                         ctypes.byref(leaf), 0)
        if ret < 0:
            raise Exception(f"Could not update table: {os.strerror(failure(ret))}")

    def __delitem__(self, key: Any) -> None:
        if self.ttype in ARRAYS:  # deleting from an array has no effect: zero it, as BCC does
            self[key] = self.Leaf()
            return
        if libbpf.bpf_map_delete_elem(self._fd(), ctypes.byref(key)) < 0:
            raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        if self.ttype in ARRAYS:
            return (self.Key(i) for i in range(self.max_entries))
        if self.ttype == RINGBUF:
            return iter(())
        return self._hash_keys()

    def _hash_keys(self) -> Iterator[Any]:
        fd = self._fd()
        key = None
        while True:
            following = self.Key()
            previous = None if key is None else ctypes.byref(key)
            if libbpf.bpf_map_get_next_key(fd, previous, ctypes.byref(following)) < 0:
                return
            yield following
            key = following

    def __len__(self) -> int:
        if self.ttype in ARRAYS:
            return self.max_entries
        return sum(1 for _ in self)

    def keys(self) -> Iterator[Any]:  # type: ignore[override]  # BCC returns an iterator
        return iter(self)

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """(key, value) pairs; an entry deleted between the key and its lookup is skipped."""
        out = []
        for key in self:
            try:
                out.append((key, self[key]))
            except KeyError:
                pass
        return out

    def values(self) -> list[Any]:  # type: ignore[override]
        return [value for _, value in self.items()]

    def clear(self) -> None:
        for key in list(self):
            del self[key]
