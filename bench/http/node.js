// bench/http/node.js: the http_hello responder with Node.js net.
const net = require('net');
const port = Number(process.argv[2] || 8080);
const BODY = 'Hello, World!';
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n' +
  'Content-Length: ' + BODY.length + '\r\n\r\n' + BODY);
net.createServer({ noDelay: true }, (c) => {
  let pending = '';
  c.on('data', (d) => {
    pending += d.toString('latin1');
    let n = 0, at = 0, e;
    while ((e = pending.indexOf('\r\n\r\n', at)) >= 0) { n++; at = e + 4; }
    pending = pending.slice(at);
    for (let i = 0; i < n; i++) c.write(RESPONSE);
  });
  c.on('error', () => {});
}).listen(port, '127.0.0.1');
