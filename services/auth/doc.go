// Command switchboard-auth is the token authority of Switchboard.
//
//	switchboard-auth               serve (settings from AUTH_* variables)
//	switchboard-auth healthcheck   exit 0 if the local replica serves
//	switchboard-auth createuser -email E [-id ID] [-addr A]
//	                               add a user; the password is read from
//	                               the first line of standard input
//	switchboard-auth genkey [-alg EdDSA|ES256]
//	                               print a new PKCS #8 signing key
//
// The serving code lives in the packages below this one: app (wiring and
// configuration), authority (the logic and the cached lookup), token, store,
// password, grpcapi and httpapi. This package only parses the subcommand
// and runs it, once per process.
package main
