"""Resilience for the waypoint's endpoint choice, pure and clock-free (times are
arguments): peak-EWMA load with power-of-two-choices (``balance``), outlier detection
(``outlier``) and connection-pool limits (``limits``), the parameters a
BackendTrafficPolicy gives them (``params``), and their per-Service state (``state``). The
waypoint's side: waiting at the pool limits (``gate``), metrics (``metrics``)."""
