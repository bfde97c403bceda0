# What the benchmark scripts share (bench-http.sh, bench-replicas.sh, soak.sh): a work directory
# removed at exit, the processes they start stopped at exit, free ports, waiting for a server.
# Sourced, not run: `. scripts/bench-lib.sh NAME` sets `work` and `pids`.

work=$(mktemp -d "${TMPDIR:-/tmp}/broker-${1:-bench}.XXXXXX")
chmod 755 "$work"
pids=()

# Stops every process in `pids` (started by the script, never another's) and forgets them.
stop_started() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

# What runs at exit; a script with more to undo defines `cleanup_more`.
bench_cleanup() {
  stop_started
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
