"""Names of the virtio-serial ports between host and guest: vngcmd gives them to qemu,
the agent finds them under /sys/class/virtio-ports."""

CHANNEL = "knit.0"   # the agent's JSON-lines channel
SHELL = "knit.1"     # raw bytes of an interactive pty (knit shell)
