"""`make bench-trace`: what kernel connection tracing costs (issue 12)."""
