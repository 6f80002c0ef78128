"""bcc / libbpf-tools runner and output parsers (tools.py, parsers.py), and the project's
own BPF programs (toa_sockops/)."""
