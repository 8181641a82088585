#!/bin/sh
# SPDX-License-Identifier: MIT
# The sweep benchmark's reference for workers: N separate icmprun processes,
# shard i of N each, as a user would run them by hand; waits for all.
#
#   scripts/bench/shards.sh ICMPRUN BLOCK N
set -eu
i=1
while [ "$i" -le "$3" ]; do
  "$1" scripts/bench/shard-loop.lua "$2" "$i" "$3" &
  i=$((i + 1))
done
wait
