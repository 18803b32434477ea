import re,sys
files={'src/db/sqlite-maintenance-worker.ts':None,'src/db/sqlite-store.ts':None,'bench/purge.ts':None}
pats=[r"^import \{ trace, now(, flushTrace)? \} from './trace';\n", r"^import \{ trace, now, flushTrace \} from './trace';\n",
 r"^\s*const (t0|t1|w0|c0|s0) = now\(\);\n", r"^\s*trace\('.*\);\n", r"^\s*flushTrace\('worker'\);\n",
 r"^\s*const acceptTrace: number\[\]\[\] = \[\];\n", r"^\s*if \(process.env.TRACE_DIR\).*\n"]
for f in files:
    s=open(f).read()
    for p in pats: s=re.sub(p,'',s,flags=re.M)
    s=s.replace("slice.on('response', (_client, _status, _bytes, ms: number) => { acceptLatencies.push(ms); acceptTrace.push([performance.timeOrigin + performance.now(), ms]); });","slice.on('response', (_client, _status, _bytes, ms: number) => acceptLatencies.push(ms));")
    open(f,'w').write(s)
