// The comparison server: Node.js with the `ws` package, doing what the
// gateway does per viewer that matters for memory and accept rate: parse the
// stream id, verify the HS256 token (node:crypto), keep the socket, ping every
// 30 s, send a count right after join. No Kafka (so it does less than the gateway).
'use strict';
const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const port = Number(process.env.PORT);
const secret = process.env.VC_TOKEN_SECRET || '';

function verify(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return 0;
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'HS256') return 0;
  const sig = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest('base64url');
  if (sig !== parts[2]) return 0;
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  if (!claims.exp || claims.exp * 1000 <= Date.now()) return 0;
  return Number(claims.sub) || 0;
}

const server = http.createServer((req, res) => { res.writeHead(200); res.end('ok\n'); });
const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const stream = url.searchParams.get('stream');
  if (url.pathname !== '/ws' || !/^[1-9][0-9]{0,18}$/.test(stream || '')) {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const user = verify(url.searchParams.get('token'));
    if (!user) { ws.close(4401, 'unauthorized'); return; }
    ws.send(JSON.stringify({ type: 'count', stream: Number(stream), status: 'counting' }));
    ws.on('message', (m) => { if (String(m) === '{"type":"ping"}') ws.send('{"type":"pong"}'); });
  });
});
setInterval(() => { for (const ws of wss.clients) ws.ping(); }, 30000);
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
