// A socket.io client the test drives: node client.js URL TOKEN TRANSPORTS
// connects to URL (the edge) with "Authorization: Bearer TOKEN" on every
// request (none when TOKEN is ""), over the transports given
// (comma-separated: "polling", "websocket"), reconnecting when it loses the
// connection. It prints events as JSON lines on stdout:
//   {"ev":"connect","transport":T,"instance":I}   connected (again)
//   {"ev":"connect_error","msg":M}                 a connection failed
//   {"ev":"disconnect","reason":R}
//   {"ev":"ping"}                                  the server's heartbeat came
//   {"ev":"upgrade","transport":T}                 polling upgraded to T
//   {"ev":"echoed","n":N,"instances":[...]}        an echo run finished
//   {"ev":"joined","room":R,"instance":I}
//   {"ev":"heard","msg":M,"from":I}               a room broadcast reached it
//   {"ev":"fail","msg":M}                          a command failed
// and takes commands, one JSON object a line, on stdin:
//   {"cmd":"echo","n":N}         sends N messages, waits for the N echoes
//   {"cmd":"join","room":R}
//   {"cmd":"say","room":R,"msg":M}
// Every wait is bounded (waitMs), and it exits when stdin closes.
"use strict";
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, token, transports] = process.argv.slice(2);
const waitMs = 30000;
const out = (o) => console.log(JSON.stringify(o));

const socket = io(url, {
  path: "/socket.io/",
  transports: transports.split(","),
  extraHeaders: token ? { Authorization: "Bearer " + token } : {},
  reconnectionDelay: 100,
  reconnectionDelayMax: 1000,
  timeout: waitMs,
});

socket.on("connect", () => {
  socket.timeout(waitMs).emit("whoami", (err, name) => {
    out({ ev: "connect", transport: socket.io.engine.transport.name, instance: err ? "" : name });
  });
});
socket.on("connect_error", (err) => out({ ev: "connect_error", msg: err.message }));
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
socket.io.on("ping", () => out({ ev: "ping" }));
socket.io.on("open", () => socket.io.engine.on("upgrade", (tr) => out({ ev: "upgrade", transport: tr.name })));
socket.on("heard", ({ msg, from }) => out({ ev: "heard", msg, from }));

function echo(n) {
  return new Promise((resolve, reject) => {
    let next = 0;
    const instances = new Set();
    const timer = setTimeout(() => done(new Error(`${next} of ${n} echoes in ${waitMs} ms`)), waitMs);
    const onMsg = ({ m, instance }) => {
      instances.add(instance);
      if (m !== `m${next}`) return done(new Error(`echo ${next}: got ${m}`));
      if (++next === n) done();
    };
    function done(err) {
      clearTimeout(timer);
      socket.off("msg", onMsg);
      err ? reject(err) : resolve([...instances]);
    }
    socket.on("msg", onMsg);
    for (let i = 0; i < n; i++) socket.emit("msg", `m${i}`);
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const c = JSON.parse(line);
  try {
    switch (c.cmd) {
      case "echo":
        out({ ev: "echoed", n: c.n, instances: await echo(c.n) });
        break;
      case "join":
        out({ ev: "joined", room: c.room, instance: await socket.timeout(waitMs).emitWithAck("join", c.room) });
        break;
      case "say":
        socket.emit("say", { room: c.room, msg: c.msg });
        break;
    }
  } catch (err) {
    out({ ev: "fail", msg: `${c.cmd}: ${err.message}` });
  }
});
rl.on("close", () => {
  socket.close();
  process.exit(0);
});

setTimeout(() => process.exit(2), 10 * 60 * 1000).unref();
