"""The RFC 9110 token rule (5.6.2), written once for the waypoint's HTTP/2 head checks
(``l7proxy.h2head``) and the model's Gateway API validation (``agent.model.validation``).
Pure and import-free: it lives with the model so the agent never imports the waypoint."""

LOWER_TCHAR = r"!#$%&'*+\-.^_`|~0-9a-z"
"""tchar without upper-case letters (HTTP/2 field names are lower case), as the body
of a regular-expression character class."""
TCHAR = LOWER_TCHAR + "A-Z"
"""tchar: the characters of a method or field name."""
