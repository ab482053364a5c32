// Package browsertest drives the demo inbox page in headless Chromium
// against real processes: the auth service and gateway replicas built from
// this repository and run by libs/proctest, sharing a real redis-server.
//
// Roles:
//   - stack: the processes of one test (auth, gateway replicas, Redis),
//     started on loopback ports and stopped at cleanup.
//   - browser: one Chromium process; page: one agent's tab in its own
//     browser context.
//
// The tests fail, never skip, when /usr/bin/chromium (or $CHROMIUM) is
// missing: `.ci/run` installs it. Screenshots go to the folder named by
// SWITCHBOARD_ARTIFACTS, else to artifacts/browsertest at the repository's
// root (git-ignored); they are kept after the run, each run overwriting
// the files of the same names.
//
// Concurrency: each test owns its stack and browser; tests that wait on
// token lifetimes run in parallel with the others.
package browsertest
