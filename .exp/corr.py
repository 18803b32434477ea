import json,glob,bisect,sys
d=sys.argv[1]; thr=float(sys.argv[2])
import os; w=json.load(open(sorted(glob.glob(d+'/worker-*.json'),key=os.path.getmtime)[0]))
a=json.load(open(d+'/accepts-with.json'))['accepts']
ck=sorted((e[1],e[2]) for e in w if e[0]=='ck')
st=sorted((e[3],e[4]) for e in w if e[0]=='step')
t0=min(x[0] for x in st); t1=max(x[1] for x in st)
def overlaps(iv, s, e):
    starts=[x[0] for x in iv]
    i=bisect.bisect_right(starts,e)-1
    while i>=0 and iv[i][1]>=s-0:
        if iv[i][0]<=e: return True
        i-=1
        if i>=0 and iv[i][1]<s-100: break
    return False
inpass=[x for x in a if t0<=x[0]<=t1]
slow=[x for x in inpass if x[1]>thr]
for name,iv in [('ck',ck),('step',st)]:
    fs=sum(overlaps(iv,x[0]-x[1],x[0]) for x in slow)/max(1,len(slow))
    fa=sum(overlaps(iv,x[0]-x[1],x[0]) for x in inpass[::20])/max(1,len(inpass[::20]))
    print(name,'slow overlapping',round(fs,3),'all overlapping',round(fa,3),'n slow',len(slow))
print('ck count',len(ck),'total ck s',sum(e-s for s,e in ck)/1000,'pass s',(t1-t0)/1000)
res=[e[3] for e in w if e[0]=='ck']
if res and res[0]: 
  full=sum(1 for r in res if r and r[0]['log']==r[0]['checkpointed']); print('complete cks',full,'of',len(res)); print('log frames p50',sorted(r[0]['log'] for r in res if r)[len(res)//2], 'max', max(r[0]['log'] for r in res if r))
