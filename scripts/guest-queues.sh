# guest-queues.sh: what the guest scripts (demo, bench) read from furing's debugfs
# `queues` files, one place for their columns. Sourced by /demo.sh and /bench.sh.

# queues_registered: how many queues of every connection have entries registered
queues_registered() {
	awk 'NF >= 15 && $1 != "qid" && $2 > 0' /sys/kernel/debug/furing/*/queues \
		2>/dev/null | wc -l
}

# furing_times: furing's debugfs counters summed over every queue of every connection:
# requests sent over a ring, then microseconds waiting for an entry or buffer, waiting
# for task work, copying requests in, copying replies out; then requests zero-copied
# and the first queue's REGISTER flags ("none" without a queue)
furing_times() {
	cat /sys/kernel/debug/furing/*/queues 2>/dev/null |
		awk 'NF >= 15 && $1 != "qid" { s += $3; w += $15; t += $14; i += $12; o += $13
				z += $10; if (f == "") f = $5 }
			END { print s + 0, w + 0, t + 0, i + 0, o + 0, z + 0, f == "" ? "none" : f }'
}
