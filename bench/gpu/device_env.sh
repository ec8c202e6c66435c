#!/usr/bin/env bash
# Source on the GPU machine from the repo root: unpacks the carried TVM bundle (.tvmdev, made by
# ../shared/tools/tvm-device/pack.sh) into /tmp/site and makes `import hwcomp` (with hwcomp.backends,
# hwcomp.schedules, hwcomp.sim mapped to the top-level folders) work without pip.
set -e
[ -d /tmp/site/tvm ] || bash .tvmdev/unpack.sh .tvmdev >/dev/null
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r hwcomp /tmp/pkg/hwcomp
for d in backends schedules sim rtl; do ln -s "$PWD/$d" "/tmp/pkg/hwcomp/$d"; done
export PYTHONPATH=/tmp/pkg:/tmp/site
export PYTHONUNBUFFERED=1
set +e
