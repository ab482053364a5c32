// Package proctest runs Switchboard's service binaries as real processes on
// loopback for tests: the end-to-end, fault and deployment tests start the
// same executables the images ship, with the same environment variables.
//
// Glossary:
//   - Binary: the path of a service executable built by Build from
//     switchboard/services/<name>, once per test binary and name.
//   - Proc: one running process of a Binary, started by Start with an
//     environment list (KEY=value entries added to the test's own).
//   - Health: how a Proc is known to serve: WaitHealthy polls its
//     `healthcheck` subcommand run in the Proc's environment, WaitHTTP an
//     HTTP URL until it answers 200; both with a deadline.
//   - Stop: SIGTERM and a bounded wait (SIGKILL after the bound); Kill:
//     SIGKILL and a wait; Restart: Start again with the same environment,
//     hence on the same addresses; ExitCode: the status the process exited
//     with.
//   - FreePort, FreeAddr: a free loopback port (host:port) below the
//     kernel's ephemeral range, where no outgoing connection can take it
//     before the process binds it or while the process restarts.
//   - RemoveBuilds: deletes the built executables; TestMain calls it after
//     m.Run.
//
// Output of a Proc (stdout and stderr together, the last 64 KiB) is written
// to the test log only when the test fails.
//
// Concurrency contract: Build, FreeAddr and FreePort may be called from
// any goroutine, and Build builds each name once even when called
// concurrently. A Proc's methods (Stop, Kill, Restart, WaitHealthy,
// Running, Output) are safe to call from several goroutines; the test's
// cleanup stops a Proc that is still running.
package proctest
