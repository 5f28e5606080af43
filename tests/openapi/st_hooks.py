"""schemathesis hooks for scripts/check_openapi.sh (loaded through SCHEMATHESIS_HOOKS).

tus chunks (`application/offset+octet-stream`) are bytes: sent as schemathesis sends
`application/octet-stream` bodies.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
