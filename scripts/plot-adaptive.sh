#!/usr/bin/env bash
# The plot of an adaptive-eval run (gnuplot, PNG): the adaptive requests' cut with the edge's RTT estimate
# and link state over time, and every request's latency, adaptive against the static splits.
# usage: scripts/plot-adaptive.sh OUT_DIR SCHEDULE EDGE_SLOWDOWN   (reads OUT_DIR/requests.csv, estimates.csv)
set -euo pipefail
out="$1"; schedule="$2"; slowdown="$3"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2; exit 0; }
# Dashed lines and labels at each phase change (durations in seconds, as the default schedule has them).
marks=""
at=0
IFS=',' read -ra phase_list <<<"$schedule"
for phase in "${phase_list[@]}"; do
  marks+="set arrow from $at, graph 0 to $at, graph 1 nohead dt 2 lc rgb 'gray'"$'\n'
  marks+="set label '${phase#*:}' at $at, graph 1.04 font ',9'"$'\n'
  duration="${phase%%:*}"
  at=$((at + ${duration%s}))
done
# Top: the cut each adaptive request ended at (the layers count = all-local), the RTT estimate and the
# link state as the edge saw them. Bottom: request latency, adaptive against every static split.
gnuplot <<EOF
set terminal pngcairo size 1200,800 noenhanced
set output "$out/adaptive.png"
set datafile separator ","
set multiplot layout 2,1 title "Tandem --split auto on an emulated link (edge: 1 thread, slowdown $slowdown; tail: 2 threads)"
$marks
set tmargin 3
set xrange [0:$at]
set ylabel "cut k (adaptive requests)"
set xlabel "time (s)"
set key outside right
plot "$out/requests.csv" using (strcol(5) eq "adaptive" ? \$1 : 1/0):(\$8) with points pt 7 ps 0.8 title "adaptive: cut", \
   "$out/estimates.csv" using 1:(\$3/10) with lines title "RTT estimate / 10 (ms)", \
   "$out/estimates.csv" using 1:(\$2*2) with steps title "link up x 2"
set ylabel "request latency (ms)"
set logscale y
plot "$out/requests.csv" using (strcol(5) eq "adaptive" ? \$1 : 1/0):(\$6 == 200 ? \$14 : 1/0) with points pt 7 ps 0.8 title "adaptive", \
   "$out/requests.csv" using (strcol(5) ne "adaptive" ? \$1 : 1/0):(\$6 == 200 ? \$14 : 1/0) with points pt 1 ps 0.8 title "static splits"
unset multiplot
EOF
echo "plot: $out/adaptive.png"
