#!/bin/sh
# What the integration tests need beyond the Rust toolchain: Python readers and servers from
# PyPI (tests/requirements.txt), and Debian's Chromium with its chromedriver for the report's
# browser test (docs/guide/report.md: The morning report), and a Java runtime for PySpark.
set -eu
python3 -m pip install --quiet --disable-pip-version-check -r "$(dirname "$0")/requirements.txt"
packages=""
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    packages="chromium chromium-driver"
fi
if ! command -v java >/dev/null 2>&1; then
    packages="$packages openjdk-17-jre-headless"
fi
if [ -n "$packages" ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $packages >/dev/null
fi
