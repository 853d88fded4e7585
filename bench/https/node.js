// bench/https/node.js: the same responder as bench/http/node.js over
// Node.js tls (what its https module runs on), TLS 1.3.
const tls = require('tls');
const fs = require('fs');
const [port, cert, key] = process.argv.slice(2);
const BODY = 'Hello, World!';
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n' +
  'Content-Length: ' + BODY.length + '\r\n\r\n' + BODY);
tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                   minVersion: 'TLSv1.3' }, (c) => {
  c.setNoDelay(true);
  let pending = '';
  c.on('data', (d) => {
    pending += d.toString('latin1');
    let n = 0, at = 0, e;
    while ((e = pending.indexOf('\r\n\r\n', at)) >= 0) { n++; at = e + 4; }
    pending = pending.slice(at);
    for (let i = 0; i < n; i++) c.write(RESPONSE);
  });
  c.on('error', () => {});
}).listen(Number(port), '127.0.0.1');
