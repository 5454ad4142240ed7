#!/usr/bin/env bash
# One capture run of the Java traffic generator (Capture.java.in) through capture_proxy.
#
# Usage: capture-java.sh seata2|seata1 PROXY_PORT OUTPUT COMPRESSOR full|short
#   seata2 = org.apache.seata:seata-all 2.6.0, seata1 = io.seata:seata-all 1.8.0
#   COMPRESSOR: none gzip zip bzip2 lz4 deflater zstd (transport.compressor)
#
# Environment:
#   TC        upstream TC (default 127.0.0.1:18091, e.g. scripts/reference-tc 18091)
#   PROXY     capture_proxy binary (default: <repo>/target/debug/examples/capture_proxy,
#             build it with: cargo build -p ferrata-proto --example capture_proxy)
#   WORK      scratch directory outside the repository (default /tmp/capture-java)
# Writes OUTPUT (frames, appended), OUTPUT.client.log and OUTPUT.proxy.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../../../.." && pwd)"
gen=$1 port=$2 out=$3 compressor=$4 mode=$5
tc="${TC:-127.0.0.1:18091}"
proxy="${PROXY:-$repo/target/debug/examples/capture_proxy}"
work="${WORK:-/tmp/capture-java}/$gen"
case "$gen" in
    seata2) pkg=org.apache.seata ;;
    seata1) pkg=io.seata ;;
    *) echo "capture-java.sh: seata2 or seata1, not $gen" >&2; exit 2 ;;
esac

# Class path (Maven Central), source for the generation's package names, compile.
mkdir -p "$work/src/capture" "$work/classes"
cp "$here/pom-$gen.xml" "$work/pom.xml"
if [[ ! -s "$work/cp.txt" ]]; then
    (cd "$work" && mvn -B -ntp -q dependency:build-classpath -Dmdep.outputFile=cp.txt)
fi
sed -e "s/@PKG@/$pkg/g" -e "s/@GEN@/$gen/" "$here/Capture.java.in" > "$work/src/capture/Capture.java"
cp "$here/logback.xml" "$work/classes/"
javac -d "$work/classes" -cp "$(cat "$work/cp.txt")" "$work/src/capture/Capture.java"

"$proxy" --conn-ids "127.0.0.1:$port" "$tc" "$out" > "$out.proxy.log" 2>&1 &
proxy_pid=$!
trap 'kill $proxy_pid 2>/dev/null || true' EXIT
sleep 0.5
rc=0
timeout 300 java -Djava.net.preferIPv4Stack=true -cp "$work/classes:$(cat "$work/cp.txt")" \
    capture.Capture "127.0.0.1:$port" "$compressor" "$mode" > "$out.client.log" 2>&1 || rc=$?
sleep 0.5
echo "capture-java.sh: $gen $compressor $mode: client exit $rc, $(grep -vc '^#' "$out") frames in $out"
