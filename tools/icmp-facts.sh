#!/usr/bin/env bash
# What the kernel tells a UDP sender about each ICMP error, by kind of socket: connected
# or not, with IP_RECVERR or without. Builds the three namespaces of
# tests/integration/icmp.rs (client, router, server; the far link's MTU 1400), runs the
# probe in the client namespace, and removes them. Root; nothing leaves the machine.
#   sudo bash tools/icmp-facts.sh [ERROR...]   (e.g. prohibited; default: all five)
set -euo pipefail
c=icmpf-c r=icmpf-r s=icmpf-s
trap 'for n in $c $r $s; do ip netns del $n 2>/dev/null || true; done' EXIT
for n in $c $r $s; do ip netns add $n; done
ip -n $r link add cr type veth peer name rc netns $c
ip -n $r link add sr type veth peer name rs netns $s
ip -n $r link set sr mtu 1400; ip -n $s link set rs mtu 1400
for n in $c $r $s; do ip -n $n link set lo up; done
ip -n $c link set rc up; ip -n $r link set cr up; ip -n $r link set sr up; ip -n $s link set rs up
ip -n $c addr add 10.91.1.2/24 dev rc; ip -n $r addr add 10.91.1.1/24 dev cr
ip -n $r addr add 10.91.2.1/24 dev sr; ip -n $s addr add 10.91.2.2/24 dev rs
ip -n $c route add default via 10.91.1.1; ip -n $s route add default via 10.91.2.1
ip netns exec $r sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0
ip -n $r route add unreachable 10.91.9.0/24; ip -n $r route add prohibit 10.91.8.0/24
# A router answers unreachable and prohibit routes at most 5 in a burst, then 1 a second
# (ip_rt_error_burst / ip_rt_error_cost, apart from icmp_ratelimit): a pause between
# the cases of those two keeps every one answered.
ip netns exec $c python3 - "$@" <<'PY'
# For each ICMP error and each kind of socket: what the kernel tells the sender.
import socket, select, struct, subprocess, time
IP_RECVERR, IP_MTU_DISCOVER, IP_PMTUDISC_DO, MSG_ERRQUEUE = 11, 10, 2, 0x2000
cases_all = [
    ("port unreachable", ("10.91.2.2", 9), {}),
    ("host unreachable", ("10.91.9.9", 53), {}),
    ("prohibited", ("10.91.8.8", 53), {}),
    ("ttl exceeded", ("10.91.2.2", 9), {"ttl": 1}),
    ("frag needed", ("10.91.2.2", 9), {"df": True}),
]
import sys
cases = [c for c in cases_all if not sys.argv[1:] or c[0] in sys.argv[1:]]
print(f"{'error':<17} {'socket':<22} {'POLLERR':<8} {'SO_ERROR':<13} {'send/recv after':<16} error queue")
for name, to, opt in cases:
    for connected in (True, False):
        for recverr in (True, False):
            subprocess.run(["ip", "route", "flush", "cache"], check=False)  # the learned MTU
            if name in ("host unreachable", "prohibited"):
                time.sleep(1.1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            if recverr:
                s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            if "ttl" in opt:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, opt["ttl"])
            size = 8
            if opt.get("df"):
                s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
                size = 1472
            try:
                if connected:
                    s.connect(to); s.send(b"x" * size)
                else:
                    s.sendto(b"x" * size, to)
                sent = "sent"
            except OSError as e:
                sent = f"send: {e.strerror}"
            time.sleep(0.3)
            p = select.poll(); p.register(s, select.POLLIN)
            ev = p.poll(0)
            pollerr = bool(ev and ev[0][1] & select.POLLERR)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # read (and cleared) first
            queue = "-"
            if recverr:
                try:
                    data, anc, flags, addr = s.recvmsg(2048, 512, MSG_ERRQUEUE)
                    for lvl, typ, d in anc:
                        errno_, origin, t, code, pad, info, dt = struct.unpack("IBBBBII", d[:16])
                        off = socket.inet_ntoa(d[20:24]) if len(d) >= 24 else "?"
                        queue = f"errno {errno_} origin {origin} type {t} code {code} info {info} by {off}"
                except BlockingIOError:
                    queue = "empty"
            try:
                s.recv(100); after = "data?"
            except BlockingIOError:
                after = "EAGAIN"
            except OSError as e:
                after = e.strerror
            kind = ("connected" if connected else "unconnected") + (", RECVERR" if recverr else "")
            print(f"{name:<17} {kind:<22} {str(pollerr):<8} {err:<13} {after:<16} {queue}" + ("" if sent == "sent" else f" [{sent}]"))
            s.close()
PY
