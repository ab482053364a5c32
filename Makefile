# Switchboard's build. Every target works from a fresh clone; the code
# generators are built from the pinned tools module into ./bin on first use.

MODULES  := libs proto services/auth services/cache services/gateway deploy
SERVICES := auth cache gateway
BIN      := $(CURDIR)/bin
GOTEST   ?= go test -race -count=1
export PATH := $(BIN):$(PATH)

.PHONY: all build test lint proto tools run bench fuzz soak clean

all: build

## build: compile every service into ./bin
build:
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do \
		echo "build $$s"; \
		(cd services/$$s && CGO_ENABLED=0 go build -o $(BIN)/switchboard-$$s .) || exit 1; \
	done

## test: every module's tests with the race detector (needs redis-server);
## every module runs even when an earlier one fails, and the failures are
## named at the end
test:
	@failed=""; \
	for m in $(MODULES); do \
		echo "=== $$m"; \
		(cd $$m && $(GOTEST) ./...) || failed="$$failed $$m"; \
	done; \
	echo "=== bench (compiles and checks the benchmark harness)"; \
	(cd bench && GOWORK=off $(GOTEST) -run . -bench '^$$' ./...) || failed="$$failed bench"; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

## fuzz: search each fuzz target of every module for FUZZTIME (make test
## runs only their seeds); a failing input is written under the package's
## testdata/fuzz/ for a plain go test to replay. Go 1.26's fuzz coordinator
## can end a run with a bare "context deadline exceeded" and no input
## (go.dev/issue/75804): that alone is reported and not counted.
FUZZTIME ?= 10s
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' $(MODULES) | sort | while read -r f; do \
		d=$$(dirname "$$f"); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			echo "fuzz $$d $$t for $(FUZZTIME)"; \
			before=$$(ls "$$d/testdata/fuzz/$$t" 2>/dev/null | wc -l); \
			log=$$(mktemp); \
			(cd "$$d" && go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) .) >"$$log" 2>&1; rc=$$?; \
			grep -v '^fuzz: elapsed' "$$log"; \
			after=$$(ls "$$d/testdata/fuzz/$$t" 2>/dev/null | wc -l); \
			race=$$(grep -cx '    context deadline exceeded' "$$log"); rm -f "$$log"; \
			if [ $$rc -ne 0 ]; then \
				if [ "$$after" = "$$before" ] && [ "$$race" -gt 0 ]; then \
					echo "fuzz $$t: stopped by the coordinator's deadline race, no failing input: not counted"; \
				else exit 1; fi; \
			fi; \
		done; \
	done

## lint: gofmt, go vet and buf lint over every module
lint: $(BIN)/buf
	@out=$$(gofmt -l $(MODULES) bench tools); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@cd bench && GOWORK=off go vet ./...
	buf lint

## proto: regenerate the Go code next to the protos
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	buf generate

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

$(BIN)/buf:
	cd tools && GOWORK=off GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf
$(BIN)/protoc-gen-go:
	cd tools && GOWORK=off GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go
$(BIN)/protoc-gen-go-grpc:
	cd tools && GOWORK=off GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc

## run: all three services on loopback with the embedded defaults
run: build
	@deploy/run-local.sh

## bench: the benchmarks of docs/benchmarks.md (needs redis-server)
bench:
	cd bench && GOWORK=off go test -run '^$$' -bench . -benchmem -cpu 1,2 ./...
	cd services/cache && go test -run '^$$' -bench . -benchmem ./...

## soak: the gateway's soak (cmd/loadgen -mode soak, needs redis-server):
## two gateway processes on loopback under churn for SOAK_DURATION, with a
## replica SIGKILLed, the Redis pub/sub connections killed and Redis
## SIGSTOPped in turn; prints a JSON report and fails when a process's
## goroutines, open fds or heap do not come back to its baseline, or an
## acknowledged message was lost (docs/benchmarks.md, "Soak")
SOAK_DURATION ?= 30s
soak:
	@mkdir -p $(BIN)
	cd services/gateway && CGO_ENABLED=0 go build -o $(BIN)/switchboard-gateway . && \
		go run ./cmd/loadgen -mode soak -gateway-bin $(BIN)/switchboard-gateway \
		-replicas 2 -conns 200 -rooms 20 -rate 1000 -soak-churn 16 -soak-fault-every 5s \
		-duration $(SOAK_DURATION)

clean:
	rm -rf $(BIN)
