import json,sys,glob,os
d=sys.argv[1]
def pct(a,p):
    a=sorted(a); 
    return a[min(len(a)-1,int(len(a)*p/100))] if a else float('nan')
def summ(name,a):
    print(f"{name}: n={len(a)} p50={pct(a,50):.2f} p90={pct(a,90):.2f} p99={pct(a,99):.2f} p99.9={pct(a,99.9):.2f} max={max(a) if a else 0:.2f}")
mains=sorted(glob.glob(d+'/main-*.json'),key=os.path.getmtime)
for label,m in zip(['with','without'],mains):
    ev=json.load(open(m))
    print('==',label,m)
    summ('sync ms',[e[2]-e[1] for e in ev if e[0]=='sync'])
    summ('sync batch',[e[3] for e in ev if e[0]=='sync'])
    summ('commit ms',[e[2]-e[1] for e in ev if e[0]=='commit'])
    summ('commit batch',[e[3] for e in ev if e[0]=='commit'])
    print('turnwaits',sum(1 for e in ev if e[0]=='turnwait'))
for w in glob.glob(d+'/worker-*.json'):
    ev=json.load(open(w))
    for k in ['purgeFinal','redactContent','reclaimSpace']:
        st=[e for e in ev if e[0]=='step' and e[1]==k]
        if st:
            summ(k+' held',[e[4]-e[3] for e in st]); summ(k+' turnwait',[e[3]-e[2] for e in st])
            print('  span s',(st[-1][4]-st[0][2])/1000, 'rows',sum(e[5] for e in st))
    summ('ck ms',[e[2]-e[1] for e in ev if e[0]=='ck'])
for f in ['with','without']:
    a=json.load(open(d+f'/accepts-{f}.json'))
    summ('accept '+f,[x[1] for x in a['accepts']])
