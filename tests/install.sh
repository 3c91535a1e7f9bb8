#!/bin/sh
# What the integration tests need beyond the Rust toolchain: Python readers and servers from
# PyPI (tests/requirements.txt), and Debian's Chromium with its chromedriver for the report's
# browser test (docs/guide/report.md: The morning report).
set -eu
python3 -m pip install --quiet --disable-pip-version-check -r "$(dirname "$0")/requirements.txt"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
