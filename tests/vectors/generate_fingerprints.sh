#!/usr/bin/env bash
# Regenerates fingerprints.json and decode_vectors.json from the Java Avro library, the reference
# implementation, so the unit tests can hold pipeline/wire to it (see GenerateVectors.java for what each
# holds). Needs Java 17+ and Maven (fetches org.apache.avro:avro, newest 1.12.x, from Maven Central).
# Not run by the test suite; run it after changing schemas/ (or publishing a version) and commit the output.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
schemas="$here/../../schemas"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mvn -q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$work/classpath.txt" >&2
# Single-file source launch; SLF4J's "no provider" warnings go to stderr.
java -cp "$(cat "$work/classpath.txt")" "$here/GenerateVectors.java" "$schemas" "$work"
mv "$work/fingerprints.json" "$work/decode_vectors.json" "$here/"
echo "wrote $here/fingerprints.json and $here/decode_vectors.json" >&2
