// Sandbox runner for textgrad_like's PythonInterpreter.
//
// Runs under Deno with only the permissions the host grants on the command line: read
// access to this file and the local Pyodide files (revoked once Pyodide is loaded), no
// write access, no network, no subprocesses, no environment, no FFI. Pyodide (CPython
// compiled to WebAssembly) executes the Python code. Everything Python can reach
// outside its in-memory file system goes through Deno, so Deno's permission checks are
// the security boundary. Granted host files never pass through Deno's file APIs: the
// host sends their contents on stdin and writes back what this runner sends.
//
// Protocol: the host's first stdin line is a random token; then one JSON request per
// line. Every reply is one line "<token><JSON>" on stdout (after a newline, so output
// the sandboxed code left on the line cannot merge with it). Sandboxed code never sees
// the token, so it cannot forge a reply. Pyodide's own stdout/stderr go to stderr.
//
// Nothing of the sandboxed program runs outside an "exec" request: the main loop below
// is synchronous (timers, promises and async callbacks never get an event-loop turn),
// Worker constructors are removed before any Python runs (the host also checks that no
// thread appeared and kills the process otherwise), and the runner exits as soon as
// stdin closes.
//
// Arguments: <pyodide index dir> (absolute, with trailing slash).

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Synchronous line I/O on stdin/stdout (so host tools can be called
// synchronously from Python, without JSPI).
// ---------------------------------------------------------------------------
let pending = new Uint8Array(0);
const chunk = new Uint8Array(1 << 16);
// The runner's own reader; sandboxed code loses every route to stdin below (it is the host channel).
const stdinReadSync = Deno.stdin.readSync.bind(Deno.stdin);

function readLineSync() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = decoder.decode(pending.subarray(0, nl));
      pending = pending.slice(nl + 1);
      return line;
    }
    const n = stdinReadSync(chunk);
    if (n === null || n === 0) {
      return null; // host closed stdin
    }
    const merged = new Uint8Array(pending.length + n);
    merged.set(pending);
    merged.set(chunk.subarray(0, n), pending.length);
    pending = merged;
  }
}

function writeAllSync(stream, bytes) {
  let off = 0;
  while (off < bytes.length) {
    off += stream.writeSync(bytes.subarray(off));
  }
}

// The token is the first line on stdin, read before any sandboxed code exists.
const TOKEN = readLineSync();
if (!TOKEN) Deno.exit(0);
const FRAME = encoder.encode("\n" + TOKEN);

function sendText(jsonText) {
  const body = encoder.encode(jsonText + "\n");
  const bytes = new Uint8Array(FRAME.length + body.length);
  bytes.set(FRAME);
  bytes.set(body, FRAME.length);
  writeAllSync(Deno.stdout, bytes);
}

function send(obj) {
  sendText(JSON.stringify(obj));
}

function logErr(text) {
  try {
    writeAllSync(Deno.stderr, encoder.encode(text + "\n"));
  } catch (_e) {
    // stderr closed: nothing to do
  }
}

// Called from Python (synchronously) to run a host tool. The runner, not the caller,
// chooses the op, so sandboxed code can only ever send tool requests this way.
function hostCall(requestJson) {
  let request;
  try {
    request = JSON.parse(String(requestJson));
  } catch (_e) {
    return JSON.stringify({ ok: false, type: "ValueError", message: "the tool request is not JSON" });
  }
  send({ op: "tool_call", request });
  const line = readLineSync();
  if (line === null) {
    Deno.exit(0); // the host is gone
  }
  return line;
}

// ---------------------------------------------------------------------------
// Files granted by the host, copied into and out of Pyodide's in-memory file system.
// ---------------------------------------------------------------------------
const { Buffer } = await import("node:buffer");

function ensureDir(FS, path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.stat(cur);
    } catch (_e) {
      FS.mkdir(cur);
    }
  }
}

// What the host already has: virtual path -> "mtime:size" when it was last copied either
// way, and when the last round of copies ended. A file is sent back only if it was written
// after that (or its size or time changed otherwise).
const copied = new Map();
let lastCopy = 0;

function endCopyRound() {
  // Wait for the millisecond clock to tick, so every later write has mtime > lastCopy.
  lastCopy = Date.now();
  while (Date.now() <= lastCopy) {
    // spin (under a millisecond)
  }
}

function stamp(st) {
  return st.mtime.getTime() + ":" + st.size;
}

function putPath(FS, msg) {
  if (msg.dir) {
    ensureDir(FS, msg.path);
    return;
  }
  ensureDir(FS, msg.path.slice(0, msg.path.lastIndexOf("/")));
  const data = Buffer.from(msg.data || "", "base64");
  FS.writeFile(msg.path, new Uint8Array(data.buffer, data.byteOffset, data.length), {
    flags: msg.append ? "a" : "w",
  });
  copied.set(msg.path, stamp(FS.stat(msg.path)));
}

function changed(virtualPath, st) {
  return copied.get(virtualPath) !== stamp(st) || st.mtime.getTime() > lastCopy;
}

const SYNC_CHUNK = 1 << 20;

// Send every file under virtualPath (symbolic links inside the sandbox are not followed).
function syncPath(FS, virtualPath, rel) {
  let st;
  try {
    st = FS.lstat(virtualPath);
  } catch (_e) {
    return; // removed inside the sandbox: leave the host copy alone
  }
  if (FS.isDir(st.mode)) {
    if (rel) send({ op: "dir", path: rel });
    for (const name of FS.readdir(virtualPath)) {
      if (name === "." || name === "..") continue;
      syncPath(FS, virtualPath + "/" + name, rel ? rel + "/" + name : name);
    }
  } else if (FS.isFile(st.mode) && changed(virtualPath, st)) {
    copied.set(virtualPath, stamp(st));
    const data = FS.readFile(virtualPath);
    let offset = 0;
    do {
      const part = data.subarray(offset, offset + SYNC_CHUNK);
      const last = offset + part.length >= data.length;
      send({
        op: "file",
        path: rel,
        first: offset === 0,
        last,
        data: Buffer.from(part.buffer, part.byteOffset, part.length).toString("base64"),
      });
      offset += part.length;
    } while (offset < data.length);
  }
}

// ---------------------------------------------------------------------------
// Start Pyodide from the local files only.
// ---------------------------------------------------------------------------
const indexURL = Deno.args[0];
// Pyodide's Emscripten glue sees Deno's Node compatibility layer and asks for a
// CommonJS `require`. Hand it only what it needs to load; modules that would open
// sockets, spawn processes or start threads are refused here as well.
const nodeModules = {
  fs: await import("node:fs"),
  path: await import("node:path"),
  crypto: await import("node:crypto"),
  tty: await import("node:tty"),
};
// Stand-ins keep a refused request from becoming a fatal Pyodide error: a shell
// command reports exit status 126 and a socket cannot be constructed.
const refusedChildProcess = {
  spawnSync: (cmd) => {
    logErr(`[sandbox] refused to run a subprocess: ${cmd}`);
    return { status: 126, signal: null };
  },
};
class RefusedWebSocket {
  constructor() {
    throw new Error("network access is disabled in this sandbox");
  }
}
RefusedWebSocket.Server = RefusedWebSocket;
function nodeModule(name) {
  const key = String(name).startsWith("node:") ? String(name).slice(5) : String(name);
  if (key in nodeModules) return nodeModules[key];
  if (key === "child_process") return refusedChildProcess;
  if (key === "ws") return RefusedWebSocket;
  throw new Deno.errors.NotCapable(`module '${name}' is not available in the sandbox`);
}
globalThis.require = nodeModule;
globalThis.__dirname = indexURL.replace(/\/$/, "");
const { loadPyodide } = await import("file://" + indexURL + "pyodide.mjs");
const pyodide = await loadPyodide({
  indexURL,
  packageBaseUrl: indexURL,
  stdout: (s) => logErr("[pyodide stdout] " + s),
  stderr: (s) => logErr("[pyodide stderr] " + s),
  env: { HOME: "/home/pyodide" },
});
// The Pyodide files are loaded; sandboxed code has no reason to read them again.
await Deno.permissions.revoke({ name: "read", path: indexURL });
await Deno.permissions.revoke({ name: "read", path: new URL(import.meta.url).pathname });

// No threads for sandboxed code: remove every constructor of a Worker that JavaScript
// can reach (the host's thread check stops the process if one is found anyway).
function refuseWorker() {
  throw new Deno.errors.NotCapable("Workers and threads are disabled in this sandbox");
}
for (const name of ["Worker", "SharedWorker"]) {
  Object.defineProperty(globalThis, name, { value: refuseWorker, writable: false, configurable: false });
}
// stdin carries the host's requests: sandboxed code may not read it, synchronously or not (a
// pending async read would swallow the next request).
function refuseStdin() {
  throw new Deno.errors.NotCapable("stdin is the sandbox's host channel and cannot be read");
}
for (const name of ["read", "readSync", "setRaw"]) {
  Object.defineProperty(Deno.stdin, name, { value: refuseStdin, writable: false, configurable: false });
}
Object.defineProperty(Deno.stdin, "readable", { get: refuseStdin, configurable: false });
if (globalThis.process && typeof globalThis.process.getBuiltinModule === "function") {
  Object.defineProperty(globalThis.process, "getBuiltinModule", {
    value: nodeModule,
    writable: false,
    configurable: false,
  });
}

pyodide.globals.set("_tg_host_call", hostCall);
send({ op: "ready", version: pyodide.version });

// ---------------------------------------------------------------------------
// Main loop: synchronous, so no JavaScript callback ever runs between requests.
// ---------------------------------------------------------------------------
let driverRun = null;
for (;;) {
  const line = readLineSync();
  if (line === null) break;
  if (!line.trim()) continue;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    send({ op: "protocol_error", message: "invalid JSON from host: " + e.message });
    continue;
  }
  try {
    if (msg.op === "init") {
      pyodide.runPython(msg.driver);
      pyodide.globals.get("_tg_init")(msg.config);
      driverRun = pyodide.globals.get("_tg_run");
      send({ op: "init_ok" });
    } else if (msg.op === "put") {
      putPath(pyodide.FS, msg);
      if (msg.ack) {
        endCopyRound();
        send({ op: "put_ok" });
      }
    } else if (msg.op === "sync") {
      syncPath(pyodide.FS, msg.virtual_path, "");
      if (msg.last) endCopyRound();
      send({ op: "sync_ok" });
    } else if (msg.op === "exec") {
      // The driver returns the complete JSON reply as one line of text.
      const out = driverRun(msg.request);
      if (typeof out === "string" && !out.includes("\n")) {
        // op and id come last: a reply that smuggled its own keys cannot override them.
        sendText('{"reply":' + out + ',"op":"result","id":' + JSON.stringify(String(msg.id)) + "}");
      } else {
        send({ op: "result", id: String(msg.id), reply: null });
      }
    } else if (msg.op === "shutdown") {
      break;
    } else {
      send({ op: "protocol_error", message: "unknown op " + msg.op });
    }
  } catch (e) {
    const message = String(e && e.message ? e.message : e);
    if (e && e.pyodide_fatal_error) {
      // Pyodide cannot continue after a fatal error: report it and exit so the
      // host starts a fresh sandbox.
      send({ op: "fatal", message });
      Deno.exit(70);
    }
    send({ op: "host_error", message });
  }
}
// Exit at once: pending timers and promise callbacks must never get their turn.
Deno.exit(0);
