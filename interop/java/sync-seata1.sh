#!/usr/bin/env bash
# The seata1 tests are the seata2 tests with the package prefix org.apache.seata -> io.seata
# (the client API used here is otherwise the same in 1.8 and 2.x). Edit seata2, then run this.
set -euo pipefail
cd "$(dirname "$0")"
src=seata2/src/test/java/dev/ferrata/interop/seata2
dst=seata1/src/test/java/dev/ferrata/interop/seata1
rm -f "$dst"/*.java
for f in "$src"/*.java; do
    sed -e 's/org\.apache\.seata\./io.seata./g' \
        -e 's/dev\.ferrata\.interop\.seata2/dev.ferrata.interop.seata1/g' \
        -e 's/interop-seata2/interop-seata1/g' \
        -e 's/Seata 2\.x (org\.apache\.seata)/Seata 1.x (io.seata)/' \
        "$f" > "$dst/$(basename "$f")"
done
cp seata2/src/test/resources/logback-test.xml seata1/src/test/resources/logback-test.xml
