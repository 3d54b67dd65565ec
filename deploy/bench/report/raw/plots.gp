set terminal pngcairo size 900,480 font 'sans,10'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'latency (ms)'
set grid ytics
set key top left
set logscale y
set output 'deploy/bench/report/latency-hit.png'
set title 'Cache hits: wrk latency percentiles (median of rounds)'
plot 'deploy/bench/report/raw/latency-hit.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
set output 'deploy/bench/report/latency-miss.png'
set title 'Misses through the origin: wrk latency percentiles (median of rounds)'
plot 'deploy/bench/report/raw/latency-miss.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
set output 'deploy/bench/report/latency-auth.png'
set title 'Auth rejects: wrk latency percentiles (median of rounds)'
plot 'deploy/bench/report/raw/latency-auth.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
set output 'deploy/bench/report/latency-limit.png'
set title 'Rate-limited answers: wrk latency percentiles (median of rounds)'
plot 'deploy/bench/report/raw/latency-limit.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
set output 'deploy/bench/report/paced.png'
set title 'Paced cache hits (open loop) at 50% and 90% of the full chain max'
plot 'deploy/bench/report/raw/paced.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4), '' using 5 title columnheader(5)
