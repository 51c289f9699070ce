"""CPU per thread kind, and the workers' symbols, in the 2 M phase (the samples before the first
one naming SpinTask) of two profiles of `bench checkpoint`: A, B and B - A, in ms. Session 14:

    nice -n -10 perf record -a -e cpu-clock -F 10000 -o A.data -- ./swiftmp-exp bench checkpoint --repetitions 6
    SWIFTMP_EXP_WJ=2 nice -n -10 perf record -a -e cpu-clock -F 10000 -o B.data -- ./swiftmp-exp bench checkpoint --repetitions 6
    for x in A B; do perf script -i $x.data -F comm,tid,time,period,ip,sym | awk '{ $5=""; print }' > $x.txt; done
    python3 checkpoint-perf-workers.py A.txt B.txt 25
"""
import collections, sys
def load(f):
    rows=[]
    for line in open(f):
        p=line.split()
        if len(p)<4: continue
        try: t=float(p[2].rstrip(':')); per=float(p[3])/1e6
        except ValueError: continue
        rows.append((p[0],t,per,' '.join(p[4:]) if len(p)>4 else '?'))
    end=min([t for c,t,per,s in rows if 'SpinTask' in s] or [1e18])
    d=collections.defaultdict(float); k=collections.defaultdict(float)
    for c,t,per,s in rows:
        if t>=end: continue
        k[c if c.startswith('swiftmp-') or c=='swapper' else 'other']+=per
        if c=='swiftmp-worker': d[s.split('+')[0][:60]]+=per
    return d,k
(a,ka),(b,kb)=load(sys.argv[1]),load(sys.argv[2])
for c in sorted(set(ka)|set(kb)): print('%-20s %8.1f %8.1f'%(c,ka.get(c,0),kb.get(c,0)))
keys=sorted(set(a)|set(b),key=lambda k:-(abs(b.get(k,0)-a.get(k,0))))
for k in keys[:int(sys.argv[3]) if len(sys.argv)>3 else 25]: print('%-60s %8.1f %8.1f %8.1f'%(k,a.get(k,0),b.get(k,0),b.get(k,0)-a.get(k,0)))
