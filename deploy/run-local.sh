#!/usr/bin/env bash
# make run: the three services on loopback. Without REDIS_URL they use their
# embedded defaults (in-process broker, in-memory store); with REDIS_URL set
# they share that Redis. Either way auth has the demo user and conversation
# (AUTH_DEMO=1, unless AUTH_DEMO is set otherwise). Ctrl-C stops everything
# and exits 0; a service that does not start, or stops by itself, stops the
# others and exits 1.
#
# Listen addresses are the services' own variables (AUTH_GRPC_ADDR,
# AUTH_HTTP_ADDR, AUTH_METRICS_ADDR, CACHE_GRPC_ADDR, CACHE_HTTP_ADDR,
# GATEWAY_HTTP_ADDR, GATEWAY_GRPC_ADDR, GATEWAY_METRICS_ADDR); the gateway
# is pointed at auth's gRPC address and auth lets the gateway's page call
# it. Two variables are the script's own:
# SWITCHBOARD_BIN, the folder of the binaries (./bin, where make build puts
# them), and SWITCHBOARD_RUN, the folder of the services' logs
# (<service>.log) and of the service credential made for this run alone
# (credential, for calls such as POST /v1/publish), ./tmp/run.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${SWITCHBOARD_BIN:-./bin}
logs=${SWITCHBOARD_RUN:-./tmp/run}
mkdir -p "$logs"
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$logs/credential"
cred=$(cat "$logs/credential")

auth_grpc=${AUTH_GRPC_ADDR:-127.0.0.1:7200}
auth_http=${AUTH_HTTP_ADDR:-127.0.0.1:7201}
auth_metrics=${AUTH_METRICS_ADDR:-127.0.0.1:7202}
gateway_http=${GATEWAY_HTTP_ADDR:-127.0.0.1:7100}
gateway_metrics=${GATEWAY_METRICS_ADDR:-127.0.0.1:7102}
export AUTH_SERVICE_CREDENTIAL="$cred"     # auth's trusted RPCs
export GATEWAY_AUTH_CREDENTIAL="$cred"     # what the gateway presents to auth
export GATEWAY_SERVICE_CREDENTIAL="$cred"  # what backends present to publish
export AUTH_ADDR="${AUTH_ADDR:-$auth_grpc}"
export AUTH_DEMO="${AUTH_DEMO:-1}"
# The gateway serves the demo inbox page, which logs in through auth's HTTP
# API from the gateway's origin.
export GATEWAY_WEB_AUTH_URL="${GATEWAY_WEB_AUTH_URL:-http://$auth_http}"
export AUTH_CORS_ORIGINS="${AUTH_CORS_ORIGINS:-http://$gateway_http,http://localhost:${gateway_http##*:}}"

pids=()
# stop ends the services that run and exits with status.
stop() {
	local status=$1
	set +e
	trap - EXIT INT TERM
	((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
	wait
	echo "stopped"
	exit "$status"
}
trap 'stop $?' EXIT
trap 'stop 0' INT TERM

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
if [ -n "${REDIS_URL:-}" ]; then
	store="Redis at $(printf '%s' "$REDIS_URL" | sed -E 's#//[^/@]*@#//#')" # no password
fi
login="  (agent@example.com / switchboard-demo)"
if [ -n "${AUTH_REDIS_URL:-${REDIS_URL:-}}" ]; then
	case $AUTH_DEMO in
	1 | t | T | true | TRUE | True) ;;
	*) login="  (no demo user: AUTH_DEMO=$AUTH_DEMO)" ;;
	esac
fi
cat <<TXT
auth     gRPC $auth_grpc  HTTP http://$auth_http  metrics http://$auth_metrics/metrics
cache    gRPC ${CACHE_GRPC_ADDR:-127.0.0.1:7300}  metrics http://${CACHE_HTTP_ADDR:-127.0.0.1:7301}/metrics
gateway  WebSocket ws://$gateway_http/ws  publish gRPC ${GATEWAY_GRPC_ADDR:-127.0.0.1:7101}  metrics http://$gateway_metrics/metrics
backend: $store
demo page: http://$gateway_http/$login
logs in $logs/, service credential in $logs/credential; Ctrl-C stops everything
TXT

# Stop everything as soon as one service ends.
wait -n "${pids[@]}" || true
echo "a service stopped by itself; see $logs/" >&2
exit 1
