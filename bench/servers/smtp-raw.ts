// The cheapest SMTP peer that still speaks the protocol, for throughput runs: a raw socket answering each command
// (EHLO with PIPELINING, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and counting each message at its final dot. It parses no
// message, so the SMTP peer's CPU does not crowd the gateway's on the same two cores (smtp-server parses every mail
// and cost about as much as the sender). The functional tests keep smtp-server.
import net from 'node:net';

let received = 0;
const terminator = Buffer.from('\r\n.\r\n');

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let inData = false;
  let line = '';
  // The last bytes of the previous chunk, so a terminator split across chunks is still found.
  let tail: Buffer = Buffer.alloc(0);
  socket.write('220 bench ESMTP\r\n');
  const command = (text: string): string => {
    const verb = text.slice(0, 4).toUpperCase();
    switch (verb) {
      case 'EHLO':
        return '250-bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n';
      case 'HELO':
        return '250 bench\r\n';
      case 'DATA':
        inData = true;
        tail = Buffer.from('\r\n');
        return '354 go ahead\r\n';
      case 'QUIT':
        socket.end('221 bye\r\n');
        return '';
      default:
        return '250 ok\r\n';
    }
  };
  socket.on('data', (chunk: Buffer) => {
    let replies = '';
    let rest: Buffer = chunk;
    while (rest.length > 0) {
      if (inData) {
        const joined = tail.length > 0 ? Buffer.concat([tail, rest]) : rest;
        const end = joined.indexOf(terminator);
        if (end === -1) {
          tail = joined.subarray(Math.max(0, joined.length - terminator.length + 1));
          rest = Buffer.alloc(0);
        } else {
          inData = false;
          received += 1;
          replies += '250 queued\r\n';
          rest = joined.subarray(end + terminator.length);
          tail = Buffer.alloc(0);
        }
        continue;
      }
      const text = rest.toString('latin1');
      const newline = text.indexOf('\n');
      if (newline === -1) {
        line += text;
        break;
      }
      line += text.slice(0, newline);
      rest = rest.subarray(newline + 1);
      replies += command(line.replace(/\r$/, ''));
      line = '';
    }
    if (replies) socket.write(replies);
  });
  socket.on('error', () => {});
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`ready ${(server.address() as net.AddressInfo).port}`);
});
process.on('message', (message) => {
  if (message === 'count') process.send!({ received });
});
