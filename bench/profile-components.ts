// Splits a CPU profile (BENCH_PROF) of an accept run into components, leaf first: each sample goes to the innermost
// frame that names a component, so zod called by the service counts as validation, not as the service.
// `npx tsx bench/profile-components.ts <file.cpuprofile> [CPU ms per request]` prints each component's share of the
// busy samples (idle and start-up left out) and, given the run's CPU ms per request, its microseconds per request.
import fs from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

const components: [name: string, test: (frame: Node['callFrame']) => boolean][] = [
  ['start-up (module loading)', (f) => /node:internal\/modules|loadAndTranslate|compileSourceTextModule/.test(f.url + f.functionName)],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['SQLite: statements, commit, WAL sync', (f) => /better-sqlite3/.test(f.url) || /^(insertNow|commitBatch|flushWrites|syncWal|afterSync|prepared|write)$/.test(f.functionName) && /gateway-accept|baseline/.test(f.url) || f.functionName === 'fdatasync'],
  ['validation (zod)', (f) => /\/zod\//.test(f.url)],
  ['authentication (token hash)', (f) => f.functionName === 'authenticate' || /crypto\/hash/.test(f.url)],
  ['request log line (pino)', (f) => /pino|sonic-boom|@pinojs/.test(f.url)],
  ['metrics (prom-client)', (f) => /prom-client/.test(f.url)],
  ['GraphQL execution (graphql-tools, graphql-js, Pothos)', (f) => /@graphql-tools|\/graphql\/|@pothos/.test(f.url)],
  ['yoga and envelop', (f) => /graphql-yoga|@envelop|graphql-armor|lru-cache/.test(f.url)],
  ['whatwg-node (Request, Response, promise helpers)', (f) => /@whatwg-node/.test(f.url)],
  ['node:http server and sockets', (f) => /node:_http|node:net|stream_base_commons|node:internal\/streams|^writev$|^writeBuffer$|^writeUtf8String$/.test(f.url + f.functionName) || f.functionName === 'writev'],
];

const [file, perRequest] = [process.argv[2]!, Number(process.argv[3] ?? Number.NaN)];
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const totals = new Map<string, number>();
let busy = 0;
profile.samples.forEach((id, index) => {
  const time = profile.timeDeltas[index] ?? 0;
  if (byId.get(id)!.callFrame.functionName === '(idle)') return;
  let component = 'the rest: the gateway\'s own code, node internals';
  for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
    const match = components.find(([, test]) => test(byId.get(current!)!.callFrame));
    if (match) {
      component = match[0];
      break;
    }
  }
  if (component.startsWith('start-up')) return;
  busy += time;
  totals.set(component, (totals.get(component) ?? 0) + time);
});
for (const [component, time] of [...totals].sort((a, b) => b[1] - a[1])) {
  const share = time / busy;
  const micros = Number.isNaN(perRequest) ? '' : `  ${(share * perRequest * 1000).toFixed(0).padStart(4)} µs`;
  console.log(`${(share * 100).toFixed(1).padStart(5)}%${micros}  ${component}`);
}
