#!/usr/bin/env bash
# make run: the three services on loopback. Without REDIS_URL they use their
# embedded defaults (in-process broker, in-memory store, a demo user); with
# REDIS_URL set they share that Redis. Ctrl-C stops everything.
#
# The services' logs go to tmp/run/<service>.log. A service credential is
# made for this run alone and written to tmp/run/credential, for calls such
# as POST /v1/publish.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=./bin
logs=./tmp/run
mkdir -p "$logs"
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$logs/credential"
cred=$(cat "$logs/credential")

export AUTH_SERVICE_CREDENTIAL="$cred"     # auth's trusted RPCs
export GATEWAY_AUTH_CREDENTIAL="$cred"     # what the gateway presents to auth
export GATEWAY_SERVICE_CREDENTIAL="$cred"  # what backends present to publish
# The gateway serves the demo inbox page, which logs in through auth's HTTP API.
export GATEWAY_WEB_AUTH_URL="${GATEWAY_WEB_AUTH_URL:-http://${AUTH_HTTP_ADDR:-127.0.0.1:7201}}"

pids=()
stop() {
	trap - EXIT INT TERM
	((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
	wait
	echo "stopped"
	exit 0
}
trap stop EXIT INT TERM

start() {
	local name=$1
	"$bin/switchboard-$name" >"$logs/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		# A service that could not bind its port exits; a healthcheck could
		# still pass against another process on that port, so ask both.
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			break
		fi
		if "$bin/switchboard-$name" healthcheck >/dev/null 2>&1 &&
			kill -0 "${pids[-1]}" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$name did not start; the end of $logs/$name.log:" >&2
	tail -n 20 "$logs/$name.log" >&2
	exit 1
}

start auth
start cache
start gateway

store="embedded (in-process broker and store)"
[ -n "${REDIS_URL:-}" ] && store="Redis at ${REDIS_URL%%@*}"
cat <<TXT
auth     gRPC ${AUTH_GRPC_ADDR:-127.0.0.1:7200}  HTTP http://${AUTH_HTTP_ADDR:-127.0.0.1:7201}
cache    gRPC ${CACHE_GRPC_ADDR:-127.0.0.1:7300}  HTTP http://${CACHE_HTTP_ADDR:-127.0.0.1:7301}/metrics
gateway  WebSocket ws://${GATEWAY_HTTP_ADDR:-127.0.0.1:7100}/ws  publish gRPC ${GATEWAY_GRPC_ADDR:-127.0.0.1:7101}
backend: $store
demo page: http://${GATEWAY_HTTP_ADDR:-127.0.0.1:7100}/  (agent@example.com / switchboard-demo)
logs in $logs/, service credential in $logs/credential; Ctrl-C stops everything
TXT

# Stop everything as soon as one service ends.
wait -n "${pids[@]}" || true
echo "a service stopped; see $logs/" >&2
