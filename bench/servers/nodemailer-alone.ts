// nodemailer on its own: the same pool, the same mails, straight to the same SMTP peer.
import nodemailer from 'nodemailer';

const count = Number(process.env.COUNT ?? 10000);
const transport = nodemailer.createTransport({
  host: '127.0.0.1',
  port: Number(process.env.SMTP_PORT),
  secure: false,
  ignoreTLS: true,
  pool: true,
  maxConnections: Number(process.env.POOL ?? 5),
});
const started = performance.now();
await Promise.all(
  Array.from({ length: count }, (_, index) =>
    transport.sendMail({
      from: 'notify-gateway <notify@localhost>',
      to: [`ops${index % 100}@example.com`],
      subject: `bench ${index}`,
      text: `message ${index}: disk /var is at 97%`,
    }),
  ),
);
const seconds = (performance.now() - started) / 1000;
transport.close();
const cpu = process.cpuUsage();
console.log(JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
