// Package interop drives the official seata-go client against a Ferrata
// Transaction Coordinator and checks the outcomes a seata-go application would
// observe: global transactions begun, committed and rolled back through the TM
// API, and TCC branches whose phase-two Commit/Rollback is delivered by the TC.
//
// The tests live in the _test.go files of this package. Run them with
//
//	FERRATA_BIN=/path/to/ferrata-server go test -count=1 -v ./...
//
// (the test starts the server on a free loopback port with a temporary data
// directory and stops it with SIGTERM afterwards), or against a TC that is
// already running with
//
//	TC_ADDR=127.0.0.1:8091 go test -count=1 -v ./...
//
// FERRATA_SERVER_LOG=<file> keeps a full copy of the server's stderr/stdout.
package interop
