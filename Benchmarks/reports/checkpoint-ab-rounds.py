"""Summary of interleaved runs of `bench checkpoint` in separate processes (session 14), lines
"ROUND MODE load=L1 L5 L15 {json of checkpoint.map.2000000.square}": per round vs_plain, the
plain and checkpointed rates and the extra CPU per map (parent_cpu_ms - plain_parent_cpu_ms);
then per mode the median [min-max] over the rounds.
"""
import sys,json,statistics as st,collections
d=collections.defaultdict(list); loads=[]
for line in open(sys.argv[1]):
    p=line.split(' ',5)
    if len(p)<6 or not p[5].strip(): continue
    j=json.loads(p[5]); loads.append(float(p[2][5:]))
    d[p[1]].append((j['vs_plain'],j['plain']/1e6,j['value']/1e6,j['parent_cpu_ms']-j['plain_parent_cpu_ms']))
    print(p[0],p[1],p[2],'vs_plain=%.3f plain=%.1fM ckpt=%.1fM extra=%.1f'%d[p[1]][-1])
print('load 1-min range %.2f-%.2f'%(min(loads),max(loads)))
for k,v in d.items():
    f=lambda i:'%.3f [%.3f-%.3f]'%(st.median([x[i] for x in v]),min(x[i] for x in v),max(x[i] for x in v))
    print(k,'n=%d'%len(v),'vs_plain',f(0),'plain M/s',f(1),'ckpt M/s',f(2),'extraCPU',f(3))
