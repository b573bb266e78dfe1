#!/usr/bin/env python3
"""Sums a whole-machine `perf record` by category of symbol and prints a
markdown table (used by .ci/profile.sh). Categories are matched on symbol
names, so they are approximate: inlined code counts where it was inlined."""
import collections
import re
import subprocess
import sys

f = sys.argv[1]
out = subprocess.run(["perf","report","-i",f,"--no-children","--sort","pid,sym","-g","none","--stdio","--percent-limit","0"],capture_output=True,text=True).stdout
def cat(sym):
    s = sym
    if s.startswith("[k]"):
        if re.search(r"futex|wake|schedule|switch|_raw_spin|eventfd|epoll|ep_poll|select_task|enqueue|dequeue|pick_next|update_curr|ttwu|idle|hrtimer|rseq|syscall|entry_SYSCALL|do_syscall|__x64_sys_futex|irq", s): return "kernel: thread wake-ups and switches"
        if re.search(r"tcp|ip_|sock|skb|inet|__dev|net_|loopback|nf_|__sys_(send|recv)", s): return "kernel: TCP loopback"
        if re.search(r"ext4|filemap|folio|jbd2|page|copy_|iomap|vfs_|xas_|blk|fsync|writeback|generic_perform|_copy", s): return "kernel: files and page cache"
        return "kernel: other"
    s = s[4:]
    if re.match(r"(sqlite3|pcache|btree|vdbe|wal|getPage|releaseMem|unixWrite|unixRead|subjournal|pager|moveTo|balance|insertCell|yy|sqlite)", s, re.I): return "SQLite engine"
    if re.search(r"sqlx", s): return "sqlx (Any driver, rows, args)"
    if re.search(r"flume", s): return "flume channels (sqlx <-> its thread)"
    if re.search(r"^(_int_|malloc|free|cfree|realloc|__libc_|unlink_chunk|arena|tcache|_mid_memalign|__memmove|__memcpy|__memset|__strlen|memcmp|__memcmp)", s): return "malloc and memcpy"
    if re.search(r"pthread|futex|__lll|clock_gettime|vdso|syscall", s): return "libc: locks, clocks, syscalls"
    if re.search(r"tokio", s): return "tokio scheduler"
    if re.search(r"hyper|axum|tower|http", s): return "HTTP (hyper, axum, tower)"
    if re.search(r"serde|json", s): return "JSON"
    if re.search(r"minijinja|lettre|quoted_printable|mail|nom", s): return "e-mail rendering"
    if re.search(r"jsonwebtoken|ring|hmac|sha2|base64", s): return "JWT"
    if re.search(r"tracing|metrics", s): return "tracing and metrics"
    return "other user code"
tot = collections.Counter()
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+(\d+):(\S+)\s+(.*)$", line)
    if not m: continue
    pct, pid, comm, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    if comm == "swapper": c = "idle (CPU waiting)"
    else: c = cat(sym)
    tot[c] += pct
print("| where | share of both CPUs |")
print("| --- | ---: |")
for c, v in tot.most_common():
    print(f"| {c} | {v:.1f} % |")
