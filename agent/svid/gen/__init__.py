"""Generated gRPC modules (scripts/gen-proto.sh)."""
