"""Kernel connection tracing: tracepoint programs (bpf/trace_*.c), their loader, and the
translation of their records into flows (connect latency, RTT, retransmits, kernel drops)."""
