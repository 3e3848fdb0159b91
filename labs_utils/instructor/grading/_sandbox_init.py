"""The first process inside the sandbox, before the kernel: ``python -I -S _sandbox_init.py [--limit=NAME=VALUE ...]
[--uid=UID] -- KERNEL ARGV`` (standard library only; no site, no PYTHONPATH).

It closes every inherited file descriptor but stdin/stdout/stderr, sets each resource limit soft and hard (the
kernel cannot raise them again), drops to ``UID`` (group too, no supplementary groups) when given (the grader runs
as root), checks that no capability is left, and executes the kernel.
"""
import os
import resource
import sys


def main(argv):
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    os.closerange(3, 2**16)
    uid = None
    for option in options:
        if option.startswith("--limit="):
            name, value = option[len("--limit="):].split("=")
            number = int(value)
            resource.setrlimit(getattr(resource, name), (number, number))
        elif option.startswith("--uid="):
            uid = int(option[len("--uid="):])
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    with open("/proc/self/status") as status:
        effective = [line.split()[1] for line in status if line.startswith(("CapEff:", "CapPrm:"))]
    if any(int(mask, 16) for mask in effective):
        sys.exit("sandbox: capabilities left after dropping them")
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
