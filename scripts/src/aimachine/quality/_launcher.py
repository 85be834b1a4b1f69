"""Set the sandbox's resource limits, then exec bubblewrap (or, without it, the interpreter).

The harness runs ``python -I -S -c <this file's text> AS CPU NPROC FSIZE NOFILE -- argv...``,
already as the sandbox's uid in root mode (subprocess switches uid, gid and groups before the
exec). The text is passed with ``-c`` so the sandbox uid needs no access to the harness's files.
Limits are inherited by bwrap and everything it starts; the death signal survives the exec of
the (non-setuid) bwrap, so a killed harness takes the sandbox with it.
"""

import ctypes
import os
import resource
import sys

PR_SET_PDEATHSIG = 1
SIGKILL = 9


def main() -> None:
    split = sys.argv.index("--")
    address_space, cpu, nproc, fsize, nofile = (int(value) for value in sys.argv[1:split])
    argv = sys.argv[split + 1 :]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(125)  # the harness is already gone
    for which, soft, hard in (
        (resource.RLIMIT_AS, address_space, address_space),
        # The soft CPU limit sends SIGXCPU, the hard one a second later SIGKILL.
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_FSIZE, fsize, fsize),
        (resource.RLIMIT_NOFILE, nofile, nofile),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))
    os.execv(argv[0], argv)


main()
