// Stand-in for vimagination.zapto.org/byteio, which the Go module proxy
// reachable here refuses (403). Wired in by a replace directive in ../../go.mod.
module vimagination.zapto.org/byteio

go 1.18
