// bench/http/node_http.js: the hello responder on Node's http module
// (what bench/http_server.sh compares mp.http with).
const http = require('http');
const port = Number(process.argv[2] || 8080);
http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('Hello, World!');
}).listen(port, '127.0.0.1');
