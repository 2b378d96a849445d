"""Infrastructure failures: the runner, the network or the registry failed, not the change.

Only what runners, package managers and registries print counts: a test that itself tests timeouts or
connection errors (``test_timeout``, ``TimeoutError``, a test's ``ECONNRESET``) is the change's failure.
So a timeout is the job's or step's (``exceeded the maximum execution time``, ``The action has timed out``),
not ``test timed out after``; a network error token counts only on a line that names a registry, a host, a
URL or a package manager. When several kinds show, the cause wins over its consequence: a runner that lost
its machine or a full disk also cancels the job, so ``cancelled`` comes last.
"""

from __future__ import annotations

import re

from bot.core.ci_output.records import Infra, InfraKind

SCAN_CHARS = 1000  # of each line: the phrases are short and early; hostile lines stay cheap

# In order of priority: the cause before its consequence (see the module's docstring).
_KINDS: tuple[tuple[InfraKind, str], ...] = (
    ("runner-lost", r"The runner has received a shutdown signal|lost communication with the server"
                    r"|The (?:self-hosted|hosted) runner: .* lost communication|The job was not acquired by Runner"
                    r"|The hosted runner encountered an error while running your job|request to deprovision"),
    ("disk-full", r"(?i:No space left on device|\bENOSPC\b|not enough space on the disk"
                  r"|You are running out of disk space)"),
    # the machine's memory, not a runtime's own heap cap: Node's `JavaScript heap out of memory` and the JVM's
    # `OutOfMemoryError: Java heap space` hit a limit the project sets (--max-old-space-size, -Xmx) and a change
    # can cross it; only a thread the system cannot give is the machine's. The kernel's OOM killer counts, for the
    # machine or a container's memory cgroup (dmesg, which some CI jobs print on failure), and so does its word
    # for a SIGKILL as a shell reports a child it lost (`step.sh: line 1: 40423 Killed   docker-compose up`).
    ("oom", r"(?:^|: )Killed$|Killed signal terminated program|\bOut of memory: Kill|\binvoked oom-killer:"
            r"|\bMemory cgroup out of memory\b|\bkilled as a result of limit of /"
            r"|java\.lang\.OutOfMemoryError: unable to create (?:new )?native thread|Cannot allocate memory"
            r"|(?:exit code|exit status|exited with code) 137\b"
            r"|(?:fatal|FATAL|error|ERROR)\b(?!.*\bheap out of memory).*\bout of memory\b|^runtime: out of memory"
            r"|terminated with signal 9\b|: line \d+: +\d+ Killed\b"),
    ("rate-limit", r"(?i:API rate limit exceeded|secondary rate limit|\btoomanyrequests\b"
                   r"|\b429 (?:Too Many Requests|Client Error)|\bHTTP(?: error)?[: /]?429\b"
                   r"|You have reached your pull rate limit)"),
    ("timeout", r"(?i:has exceeded the maximum execution time|The action .*has timed out|The job has timed out"
                r"|exceeded the maximum time limit for jobs|No output has been received in the last \d+"
                r"|Job failed: execution took longer than|\b(?:job|step|build|workflow) (?:has )?timed out after"
                r"|Build timed out \(after|Too long with no output)"),
    ("network", r"Could not resolve host|Temporary failure in name resolution|TLS handshake timeout"
                r"|\bgetaddrinfo (?:ENOTFOUND|EAI_AGAIN)\b|Failed to connect to \S+ port \d+"
                r"|dial tcp: lookup \S+(?: on \S+)?: no such host|request canceled while waiting for connection"
                r"|RPC failed; curl \d+|the remote end hung up unexpectedly"),
    ("killed", r"^Terminated$|\bsignal: killed\b|(?:exit code|exit status|exited with code) 143\b"
               r"|The runner .* was (?:killed|terminated)"),
    ("cancelled", r"The operation was canceled|The run was canceled by|Canceling since a higher priority waiting request"
                  r"|The job was canceled"),
)
_PRIORITY: tuple[InfraKind, ...] = tuple(kind for kind, _ in _KINDS)
# One pattern, a named group per kind: one search per line instead of one per kind.
_ANY = re.compile("|".join(f"(?P<k{i}>{pattern})" for i, (_, pattern) in enumerate(_KINDS)))
# Words every pattern above and below contains (lower-cased): a line with none of them is skipped after one
# cheap search, since nearly every line of a log is one.
_HINT = re.compile(
    "shutdown|communication|acquired|space|enospc|memory|killed|oom-killer|137|143|rate limit|toomany|429|execution time"
    "|timed out|time limit|no output|longer than|resol|handshake|getaddrinfo|connect|terminated|cancel|econn"
    "|etimedout|esockettimedout|eai_again|enotfound|bad gateway|service unavailable|gateway time|http code|eof"
    "|timeout|ssl_error|runner|deprovision|signal 9|no such host|rpc failed|hung up|too long")
# A retry or a warning is not the failure: pip and package managers retry network errors and often succeed.
_SOFT = re.compile(r"\b[Rr]etry|\b[Rr]etrying|^(?:##\[warning\]|WARNING|[Ww]arning|WARN|[Ww]arn|info)\b")
_NETWORK_TOKEN = re.compile(
    r"\b(?:ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|EAI_AGAIN|ENOTFOUND|ECONNREFUSED)\b|Connection reset by peer"
    r"|Connection timed out|Read timed out|\b50[234] (?:Bad Gateway|Service Unavailable|Gateway Time-?out)"
    r"|Received HTTP code 50[234]|unexpected EOF|i/o timeout|SSL_ERROR_SYSCALL|handshake failure")
# Where a network error is the infrastructure's: a registry, a URL, a package manager or a download.
_NETWORK_WHERE = re.compile(
    r"https?://|registry|\bhost\b|npm ERR!|\byarn\b|\bpnpm\b|\bpip\b|pypi|crates\.io|maven|gradle|nuget"
    r"|rubygems|docker|\bpull\b|\bfetch|\bdownload|\bclone\b|\bcurl\b|\bwget\b|trouble with your network", re.I)


def kind_of(line: str) -> InfraKind | None:
    """The kind of infrastructure failure one cleaned line reports, if any."""
    if not _HINT.search(line.lower()):
        return None
    kind: InfraKind | None = None
    if (m := _ANY.search(line)) and m.lastgroup:
        kind = _PRIORITY[int(m.lastgroup[1:])]
    elif _NETWORK_TOKEN.search(line) and _NETWORK_WHERE.search(line):
        kind = "network"
    if kind in ("network", "rate-limit") and _SOFT.search(line):
        return None
    return kind


def recognise(lines: list[str]) -> Infra | None:
    """The infrastructure failure cleaned `lines` show, if any: the first line of the most telling kind."""
    found: dict[InfraKind, str] = {}
    for line in lines:
        text = line[:SCAN_CHARS].strip()
        kind = kind_of(text) if text else None
        if kind is not None and kind not in found:
            found[kind] = text
    best = min(found, key=_PRIORITY.index, default=None)
    return Infra(best, found[best]) if best is not None else None
