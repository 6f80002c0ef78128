"""MPTCP suite helpers: the host-side session (session), guest-side traffic (traffic),
the path manager (pm), wire decoding of a capture (wire), and nstat/ss parsers."""
