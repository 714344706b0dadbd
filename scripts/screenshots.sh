#!/usr/bin/env bash
# Copy the web page's screenshots, taken by tests/test_web.py into tests/artifacts/, to docs/images/ for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
for name in web-answer web-patient web-compare web-context; do
    cp "tests/artifacts/$name.png" "docs/images/$name.png"
done
echo "copied to docs/images/"
