#!/usr/bin/env bash
# The plot of a draft-eval run (gnuplot, PNG): per RTT, grouped bars by drafter of the split's median
# tokens/s (log scale) and tokens per round trip.
# usage: scripts/plot-draft.sh OUT_DIR TITLE   (reads OUT_DIR/plans.csv; writes OUT_DIR/draft-eval.png)
set -euo pipefail
out="$1"; title="$2"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2; exit 0; }
# plans.csv has a row per phase and plan; gnuplot's clustered histograms want a row per RTT and a column
# per drafter (in the order bench-split measured them): column 8 (tokens/s) and 9 (tokens per round trip).
pivot() {
  awk -F, -v column="$1" '
    NR == 1 || $6 == "" { next }
    !($6 in seen) { seen[$6] = 1; drafters[++n] = $6 }
    !($3 in have) { have[$3] = 1; rtts[++m] = $3 }
    { value[$3, $6] = $column }
    END {
      printf "rtt"
      for (d = 1; d <= n; ++d) printf " \"%s\"", drafters[d]
      print ""
      for (r = 1; r <= m; ++r) {
        printf "\"%s ms\"", rtts[r]
        for (d = 1; d <= n; ++d) printf " %s", ((rtts[r], drafters[d]) in value ? value[rtts[r], drafters[d]] : "NaN")
        print ""
      }
    }' "$out/plans.csv"
}
pivot 8 >"$out/tokens_per_second.dat"
pivot 9 >"$out/tokens_per_step.dat"
columns=$(head -1 "$out/tokens_per_second.dat" | wc -w)
gnuplot <<EOF
set terminal pngcairo size 1200,800 noenhanced
set output "$out/draft-eval.png"
set multiplot layout 2,1 title "Speculative decoding on a 100 Mbit/s link: $title"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right
set grid ytics
set lmargin 12
set xlabel "round-trip time"
set ylabel "tokens/s (median, log)"
set logscale y
plot for [i=2:$columns] "$out/tokens_per_second.dat" using i:xtic(1) title columnheader(i)
unset logscale y
set ylabel "tokens per round trip (median)"
set yrange [0:*]
plot for [i=2:$columns] "$out/tokens_per_step.dat" using i:xtic(1) title columnheader(i)
unset multiplot
EOF
echo "plot: $out/draft-eval.png"
