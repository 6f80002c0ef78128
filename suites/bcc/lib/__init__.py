"""bcc suite helpers: the tool runner (tools), output parsers (parsers), guest-side traffic
(traffic) and the runner bound to a test's VM (net)."""
