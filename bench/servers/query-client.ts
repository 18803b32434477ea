// The client of the `deliveries` latency runs, in a process of its own: a fresh, small heap, so that its own garbage
// collections (the harness seeds a million rows and holds every result) do not show up as the gateway's tail.
import http from 'node:http';
import { postGraphqlRaw } from '../graphql-post';

interface Case {
  name: string;
  variables: Record<string, unknown>;
}

const port = Number(process.env.PORT);
const token = process.env.TOKEN!;
const query = process.env.QUERY!;
const cases = JSON.parse(process.env.CASES!) as Case[];
const warmupSeconds = Number(process.env.WARMUP_SECONDS ?? 5);
const requests = Number(process.env.REQUESTS ?? 2000);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const ask = (body: string) => postGraphqlRaw(agent, port, token, body);

// Measured after warm-up traffic over every case for WARMUP_SECONDS: a fresh process spends its first seconds
// optimising code and growing its heap, and whichever case came first would carry that (measured: p99 4–5 ms for the
// first case after 200 requests of warm-up each, 1.3–2.2 ms for all cases after 1,000 each).
const bodies = cases.map(({ variables }) => JSON.stringify({ query, variables }));
for (const [index, { name }] of cases.entries()) {
  const first = JSON.parse(await ask(bodies[index]!)) as { errors?: unknown; data?: { deliveries: { edges: unknown[] } } };
  if (first.errors || !first.data?.deliveries.edges.length) throw new Error(`${name}: ${JSON.stringify(first).slice(0, 300)}`);
}
const warmUntil = performance.now() + warmupSeconds * 1000;
while (performance.now() < warmUntil) {
  for (const body of bodies) await ask(body);
}
const results: { name: string; times: number[] }[] = [];
for (const [index, { name }] of cases.entries()) {
  const times = new Float64Array(requests);
  for (let i = 0; i < requests; i += 1) {
    const started = performance.now();
    await ask(bodies[index]!);
    times[i] = performance.now() - started;
  }
  results.push({ name, times: [...times] });
}
agent.destroy();
console.log(JSON.stringify(results));
