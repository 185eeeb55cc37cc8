"""Generated gRPC modules (scripts/gen-proto-identity.sh)."""
