#!/usr/bin/env bash
# What a tail can recover from the rows it receives (docs/privacy.md): tandem privacy-eval on stories260K
# for every cut and the fp32 and int8 codecs, then with noise on the rows at cuts 1 and 4, and the plot.
# usage: scripts/privacy-eval.sh BUILD_DIR [OUT_DIR]   (about 4 minutes on 2 cores)
set -euo pipefail
build="$1"
out="${2:-$build/privacy-eval}"
shared="${TANDEM_SHARED:-$(dirname "$0")/../../shared}"
model="$shared/models/stories260K/stories260K.bin"
golden="$shared/golden/stories260K-greedy.jsonl"
mkdir -p "$out/cuts" "$out/noise"
"$build/bin/tandem" privacy-eval --model "$model" --golden "$golden" --codecs fp32,int8 --max-positions 256 \
  --out-dir "$out/cuts"
"$build/bin/tandem" privacy-eval --model "$model" --golden "$golden" --cuts 1,4 --codecs fp32 \
  --noise 0,0.1,0.3,1 --max-positions 256 --out-dir "$out/noise"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2; exit 0; }
# gnuplot breaks a line at every skipped row: one file per codec.
for codec in fp32 int8; do
  awk -F, -v codec="$codec" 'NR > 1 && $2 == codec' "$out/cuts/privacy-eval.csv" >"$out/cuts/$codec.csv"
done
# Left: recovery rate of each attack by cut (fp32 lines, int8 points). Right: noise at cuts 1 and 4, the
# attacks' rates against the tail's own next-token agreement (the accuracy the noise costs).
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,500 noenhanced
set output "$out/privacy-eval.png"
set datafile separator ","
set multiplot layout 1,2 title "Tokens a tail recovers from the boundary rows (stories260K, 5 golden stories, 1005 positions)"
set key bottom left
set yrange [0:105]
set ylabel "tokens recovered (%)"
set xlabel "cut k (blocks on the edge)"
set xtics 1
plot "$out/cuts/fp32.csv" using 1:(\$5*100) with linespoints lw 2 title "search, weights known", \
     "" using 1:(\$7*100) with linespoints lw 2 title "linear, learned from sampled tokens", \
     "" using 1:(\$6*100) with linespoints lw 2 title "nearest embedding row", \
     "$out/cuts/int8.csv" using 1:(\$5*100) with points pt 6 ps 1.5 lc rgb "black" title "int8 codec (each attack)", \
     "" using 1:(\$7*100) with points pt 6 ps 1.5 lc rgb "black" notitle, \
     "" using 1:(\$6*100) with points pt 6 ps 1.5 lc rgb "black" notitle
set ylabel "percent"
set xlabel "noise on the rows (standard deviation / row RMS)"
set xtics auto
set logscale x
set xrange [0.05:1.5]
plot "$out/noise/privacy-eval.csv" using (\$1 == 1 && \$3 > 0 ? \$3 : 1/0):(\$5*100) with linespoints lw 2 title "k=1 search", \
     "" using (\$1 == 1 && \$3 > 0 ? \$3 : 1/0):(\$8*100) with linespoints lw 2 dt 2 title "k=1 tail accuracy", \
     "" using (\$1 == 4 && \$3 > 0 ? \$3 : 1/0):(\$5*100) with linespoints lw 2 title "k=4 search", \
     "" using (\$1 == 4 && \$3 > 0 ? \$3 : 1/0):(\$7*100) with linespoints lw 2 title "k=4 linear", \
     "" using (\$1 == 4 && \$3 > 0 ? \$3 : 1/0):(\$8*100) with linespoints lw 2 dt 2 title "k=4 tail accuracy"
unset multiplot
GNUPLOT
echo "plot: $out/privacy-eval.png"
