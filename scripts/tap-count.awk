# tap-count.awk: count kselftest TAP results of a furing results.log.
# Prints "PASSED FAILED SKIPPED". A suite that ran fewer tests than it planned
# counts the missing ones as failed; one that exited non-zero without a
# "not ok" line counts one failure.
function finish() {
	if (suite == "") return
	missing = plan - (ok + notok + skip)
	if (missing > 0) { failed += missing; print "# " suite ": " missing " planned tests did not report" > "/dev/stderr" }
	if (rc != 0 && rc != 4 && notok == 0 && missing <= 0) { failed++; print "# " suite ": exited " rc > "/dev/stderr" }
	if (!ended) { failed++; print "# " suite ": did not finish" > "/dev/stderr" }
	suite = ""
}
/^# suite: / { finish(); suite = $3; plan = ok = notok = skip = 0; rc = 0; ended = 0; next }
/^# suite-exit: / { rc = $4; ended = 1; next }
/^1\.\.[0-9]+/ { plan = substr($1, 4) + 0; next }
/^ok [0-9]+ .*# SKIP/ { skip++; skipped++; next }
/^ok [0-9]+/ { ok++; passed++; next }
/^not ok [0-9]+/ { notok++; failed++; next }
END { finish(); printf "%d %d %d\n", passed, failed, skipped }
