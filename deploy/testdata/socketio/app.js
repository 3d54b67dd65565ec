// Two instances of a socket.io application, in one process so that the
// test starts and stops them as one: each has its own HTTP server on its
// own port and its own socket.io server, so a session opened on one is
// unknown to the other, as with two processes or machines. Broadcasts to a
// room reach the sockets of both, which is what an adapter (Redis, ...)
// does for instances in production.
//
// node app.js PING_INTERVAL_MS PING_TIMEOUT_MS
// prints {"ready":{"a":PORT,"b":PORT}} once both listen on 127.0.0.1.
// Reads commands, one JSON object a line, on stdin:
//   {"cmd":"kill","instance":"a"}  closes that instance (its sockets too)
// and exits when stdin closes.
"use strict";
const http = require("node:http");
const readline = require("node:readline");
const { Server } = require("socket.io");

const [pingInterval, pingTimeout] = process.argv.slice(2).map(Number);
const servers = {};

function instance(name) {
  const httpServer = http.createServer((req, res) => {
    // Everything but socket.io: the origin's health checks.
    res.end("ok " + name);
  });
  const io = new Server(httpServer, { path: "/socket.io/", pingInterval, pingTimeout });
  io.on("connection", (socket) => {
    socket.on("whoami", (ack) => ack(name));
    // Each message comes back as it went, naming the instance that had it.
    socket.on("msg", (m) => socket.emit("msg", { m, instance: name }));
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack(name);
    });
    socket.on("say", ({ room, msg }) => {
      for (const s of Object.values(servers)) {
        s.io.to(room).except(socket.id).emit("heard", { msg, from: name });
      }
    });
  });
  servers[name] = { httpServer, io };
  return new Promise((resolve) => httpServer.listen(0, "127.0.0.1", () => resolve(httpServer.address().port)));
}

async function main() {
  const ready = { a: await instance("a"), b: await instance("b") };
  console.log(JSON.stringify({ ready }));
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const c = JSON.parse(line);
    if (c.cmd === "kill" && servers[c.instance]) {
      const { io, httpServer } = servers[c.instance];
      delete servers[c.instance];
      io.close();
      httpServer.closeAllConnections();
      console.log(JSON.stringify({ killed: c.instance }));
    }
  });
  rl.on("close", () => process.exit(0));
}

// Never outlive a test that forgot to stop it.
setTimeout(() => process.exit(2), 10 * 60 * 1000).unref();
main();
