// The floor under the `deliveries` latencies: a bare node:http server answering every request with the same bytes
// from memory (a first page the gateway served), so the table shows how much of a tail the machine itself adds.
import http from 'node:http';

const body = Buffer.from(process.env.BODY!, 'utf8');
const server = http.createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    response.end(body);
  });
});
server.listen(0, '127.0.0.1', () => console.log(`ready ${(server.address() as { port: number }).port}`));
