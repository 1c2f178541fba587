"""The sandbox a local job runs in: Linux user and mount namespaces, entered between fork and exec.

Threat model: a job is code someone submitted; ``computeplane serve`` (its parent) holds secrets in its environment
(keys, connection strings) and in its data directory (``api-keys.json``, ``state.db``, the token signing key in
``keys/``). A job gets a clean environment and a working directory outside the data directory; the sandbox makes
sure it cannot reach those secrets another way:

- The job gets a user namespace of its own. Reading another process's ``/proc/<pid>/environ``, ``cwd`` or ``root``
  is a ptrace-mode access, which the kernel grants across user namespaces only to holders of CAP_SYS_PTRACE over
  the target's namespace: a job never holds it, even when the server runs as root. (The server is also
  non-dumpable, see shared/local/serve.py; that alone does not stop root, who has CAP_SYS_PTRACE.)
- The job gets a mount namespace of its own, with a tiny read-only empty tmpfs mounted over the data directory:
  the files are simply not there. Mount events are kept private so nothing leaks back to the host.
- The job's user id inside its namespace is not 0 (the server's own id, or 65534 when the server is root), so at
  ``execve`` the kernel drops every capability: the job cannot unmount the cover, nor build a namespace that
  would reveal what is under it (mounts inherited from a more privileged namespace are locked together).

The job keeps the server's real user id outside its namespace, so it can still run the Python that lives under a
directory only that user may enter (a CI clone under a 0700 home, say); it can read what that user can read
outside the data directory. No package is needed: only ``unshare`` and ``mount`` from libc.

``enter`` runs in the forked child of a multi-threaded server, before ``exec``: it takes no lock, logs nothing and
allocates as little as it can (every byte string is prepared in the parent). On failure it writes the reason to
the child's stderr (the job's log, or the probe's pipe) and raises, so Popen reports that the job did not start.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
from pathlib import Path

from shared.config import JobSandboxMode

log = logging.getLogger(__name__)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_OVERFLOW_ID = 65534  # "nobody": the id a job has inside its namespace when the server is root
_COVER_FLAGS = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
_COVER_OPTIONS = b"size=4k,nr_inodes=1,mode=000"
PROBE_TIMEOUT_SECONDS = 30.0


class JobSandboxUnavailable(RuntimeError):
    """COMPUTEPLANE_JOB_SANDBOX=required, and this machine cannot isolate jobs (the message says why)."""


class JobSandbox:
    """Hides ``hidden_dir`` from a job and cuts it off from other processes' /proc entries. Build it in the
    parent; call ``enter`` in the child (Popen's ``preexec_fn``)."""

    def __init__(self, hidden_dir: Path) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError("user and mount namespaces are Linux-only")
        self.hidden_dir = hidden_dir.resolve()
        libc = ctypes.CDLL(None, use_errno=True)
        self._unshare = libc.unshare
        self._unshare.argtypes = [ctypes.c_int]
        self._mount = libc.mount
        self._mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        outer_uid, outer_gid = os.geteuid(), os.getegid()
        # A non-zero id inside: at execve a non-root process loses every capability it had in its namespace.
        self._uid_map = f"{outer_uid or _OVERFLOW_ID} {outer_uid} 1".encode()
        self._gid_map = f"{outer_gid or _OVERFLOW_ID} {outer_gid} 1".encode()
        self._hidden = os.fsencode(self.hidden_dir)

    def enter(self) -> None:
        """In the child, before exec. Sets no parent-death signal: changing credentials would clear it, so the
        caller sets it after this returns."""
        try:
            self._check(self._unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
            # Writing gid_map without CAP_SETGID in the parent namespace needs setgroups denied first.
            _write(b"/proc/self/setgroups", b"deny")
            _write(b"/proc/self/uid_map", self._uid_map)
            _write(b"/proc/self/gid_map", self._gid_map)
            # Our mounts stay in this namespace, even where the host's / is a shared mount (systemd's default).
            self._check(self._mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
            self._check(self._mount(b"tmpfs", self._hidden, b"tmpfs", _COVER_FLAGS, _COVER_OPTIONS),
                        "covering the data directory")
        except OSError as exc:
            os.write(2, b"computeplane: cannot isolate the job: " + str(exc).encode(errors="replace") + b"\n")
            raise

    def _enter_or_exit(self) -> None:
        """For the probe: a child that cannot enter exits with the reason on its stderr, which the probe reads
        (an exception would reach the parent only as "Exception occurred in preexec_fn")."""
        try:
            self.enter()
        except OSError:
            os._exit(126)

    @staticmethod
    def _check(result: int, what: str) -> None:
        if result != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")

    def probe(self) -> str | None:
        """Why jobs cannot run in this sandbox here, or None when they can: runs this very Python inside it."""
        try:
            done = subprocess.run([sys.executable, "-c", ""], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, preexec_fn=self._enter_or_exit,
                                  timeout=PROBE_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot run {sys.executable} in the sandbox: {exc}"
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
            return f"a probe job ({sys.executable}) failed in the sandbox: {reason}"
        return None


def _write(path: bytes, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def choose_sandbox(mode: JobSandboxMode, data_dir: Path) -> JobSandbox | None:
    """The sandbox jobs will run in, or None. ``auto`` falls back to no sandbox with one warning; ``required``
    raises JobSandboxUnavailable instead."""
    if mode == "off":
        log.info("COMPUTEPLANE_JOB_SANDBOX=off: local jobs are not isolated from the data directory %s.", data_dir)
        return None
    sandbox: JobSandbox | None = None
    try:
        sandbox = JobSandbox(data_dir)
    except OSError as exc:
        reason: str | None = str(exc)
    else:
        reason = sandbox.probe()
    if reason is None:
        return sandbox
    if mode == "required":
        raise JobSandboxUnavailable(f"COMPUTEPLANE_JOB_SANDBOX=required, but local jobs cannot be isolated here: "
                                    f"{reason}")
    log.warning("Local jobs are NOT isolated (%s): they run as the server's user and can read the data directory "
                "%s, API keys included. Set COMPUTEPLANE_JOB_SANDBOX=required to refuse to start instead.",
                reason, data_dir)
    return None
