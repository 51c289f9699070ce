"""Summary of `bench checkpoint` runs of the session-14 experiment (checkpoint-worker-journal-experiment.patch)
with SWIFTMP_EXP_WJ=2 SWIFTMP_EXP_WJ_AB=1: each repetition runs, in one process and pool, a
plain map, a map journaled by the parent's writer (main's journal) and one journaled by the
workers, in a rotating order. Input: lines "ROUND load=L1 L5 L15 {json}", as written by

    for r in $(seq 15); do
      l=$(cut -d' ' -f1-3 /proc/loadavg)
      o=$(SWIFTMP_EXP_WJ=2 SWIFTMP_EXP_WJ_AB=1 nice -n -10 ./swiftmp-exp bench checkpoint \\
          --repetitions 9 2>&1 | grep square)
      echo "$r load=$l $o"
    done > ab.txt
    python3 checkpoint-worker-journal-ab.py ab.txt

Per run and over the runs (median [min-max]): main/plain, workers/plain, workers/main (each the
median over the repetitions of the ratio of rates in the same repetition), this process's CPU
per map over the plain map's, and the wall time per map added over the plain map (from the
runs' median rates).
"""
import json,statistics as st,sys
rows=[]
for line in open(sys.argv[1]):
    p=line.split(' ',4)
    if len(p)<5 or not p[4].strip(): continue
    j=json.loads(p[4]); j['load']=float(p[1][5:]); rows.append(j)
    print(p[0],p[1],'plain %.1fM main/plain %.3f workers/plain %.3f workers/main %.3f cpu plain %.1f main %.1f workers %.1f'%(j['plain']/1e6,j['main_vs_plain'],j['workers_vs_plain'],j['workers_vs_main'],j['plain_cpu_ms'],j['main_cpu_ms'],j['workers_cpu_ms']))
print('n=%d load %.2f-%.2f plain %.1f-%.1f M/s'%(len(rows),min(r['load'] for r in rows),max(r['load'] for r in rows),min(r['plain'] for r in rows)/1e6,max(r['plain'] for r in rows)/1e6))
for k in ['main_vs_plain','workers_vs_plain','workers_vs_main']:
    v=[r[k] for r in rows]; print(k,'%.3f [%.3f-%.3f]'%(st.median(v),min(v),max(v)))
for k in ['main_cpu_ms','workers_cpu_ms']:
    v=[r[k]-r['plain_cpu_ms'] for r in rows]; print(k,'- plain','%.2f [%.2f-%.2f]'%(st.median(v),min(v),max(v)))
# absolute added ms per map, from the medians of rates: 2e6/rate
for k in ['main','value']:
    v=[2e6/r[k]*1e3-2e6/r['plain']*1e3 for r in rows]; print('added ms per map,',k if k=='main' else 'workers','%.2f [%.2f-%.2f]'%(st.median(v),min(v),max(v)))
