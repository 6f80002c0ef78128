"""Errors of knit. Each str() is a one-line message that names the fix where there is one."""

from __future__ import annotations


class KnitError(Exception):
    """Base class; the CLI prints str(e) on one line and exits non-zero."""


class KernelError(KnitError):
    """A kernel name, package or image problem."""


class BootError(KnitError):
    """The VM did not reach the agent. Carries the console tail."""

    def __init__(self, msg: str, console_tail: str = "") -> None:
        super().__init__(msg)
        self.console_tail = console_tail


class ChannelError(KnitError):
    """The guest channel failed; the VM must be replaced."""


class ChannelTimeout(ChannelError):
    pass


class ChannelClosed(ChannelError):
    pass


class RemoteError(KnitError):
    """A Python exception raised inside the guest by vm.call()."""

    def __init__(self, msg: str, tb: str = "") -> None:
        super().__init__(msg)
        self.tb = tb

    def __str__(self) -> str:
        return f"{self.args[0]}\n--- guest traceback ---\n{self.tb}" if self.tb else self.args[0]


class CmdFailed(KnitError):
    """A guest command exited non-zero with check=True; carries rc, stdout and stderr."""

    def __init__(self, argv: object, rc: int | None, stdout: str, stderr: str,
                 ns: str | None = None) -> None:
        where = f" in netns {ns}" if ns else ""
        super().__init__(f"{argv!r}{where} exited {rc}\n--- stdout ---\n{stdout}"
                         f"--- stderr ---\n{stderr}")
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
