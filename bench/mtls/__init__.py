"""bench-mtls (issue 11): plaintext kernel L4, the plaintext waypoint and the mTLS tunnel."""
