// Sandbox runner for textgrad_like's PythonInterpreter.
//
// Runs under Deno with only the permissions the host grants on the command line
// (read access to the local Pyodide files and to explicitly granted paths, write
// access to explicitly granted paths; no network, no subprocesses, no env, no FFI).
// Pyodide (CPython compiled to WebAssembly) executes the Python code. Everything
// Python can reach outside its in-memory file system goes through Deno, so Deno's
// permission checks are the security boundary.
//
// Protocol: one JSON object per line. The host writes requests to stdin; this
// runner writes replies to stdout. Pyodide's own stdout/stderr go to stderr so that
// they never corrupt the protocol stream.
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

function readLineSync() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = decoder.decode(pending.subarray(0, nl));
      pending = pending.slice(nl + 1);
      return line;
    }
    const n = Deno.stdin.readSync(chunk);
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

function send(obj) {
  writeAllSync(Deno.stdout, encoder.encode(JSON.stringify(obj) + "\n"));
}

function sendRaw(jsonText) {
  writeAllSync(Deno.stdout, encoder.encode(jsonText + "\n"));
}

function logErr(text) {
  try {
    writeAllSync(Deno.stderr, encoder.encode(text + "\n"));
  } catch (_e) {
    // stderr closed: nothing to do
  }
}

// Called from Python (synchronously) to run a host tool.
function hostCall(requestJson) {
  sendRaw(requestJson);
  const line = readLineSync();
  if (line === null) {
    return JSON.stringify({ ok: false, type: "ToolError", message: "host closed the channel during a tool call" });
  }
  return line;
}

// ---------------------------------------------------------------------------
// Files granted by the host: copied into Pyodide's in-memory file system.
// ---------------------------------------------------------------------------
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

function mountPath(FS, hostPath, virtualPath) {
  const info = Deno.statSync(hostPath);
  if (info.isDirectory) {
    ensureDir(FS, virtualPath);
    for (const entry of Deno.readDirSync(hostPath)) {
      mountPath(FS, hostPath + "/" + entry.name, virtualPath + "/" + entry.name);
    }
  } else if (info.isFile) {
    ensureDir(FS, virtualPath.slice(0, virtualPath.lastIndexOf("/")));
    FS.writeFile(virtualPath, Deno.readFileSync(hostPath));
  }
}

function syncPath(FS, virtualPath, hostPath) {
  let st;
  try {
    st = FS.stat(virtualPath);
  } catch (_e) {
    return; // removed inside the sandbox: leave the host copy alone
  }
  if (FS.isDir(st.mode)) {
    try {
      Deno.mkdirSync(hostPath, { recursive: true });
    } catch (_e) {
      // exists
    }
    for (const name of FS.readdir(virtualPath)) {
      if (name === "." || name === "..") continue;
      syncPath(FS, virtualPath + "/" + name, hostPath + "/" + name);
    }
  } else if (FS.isFile(st.mode)) {
    Deno.writeFileSync(hostPath, FS.readFile(virtualPath));
  }
}

// ---------------------------------------------------------------------------
// Start Pyodide from the local files only.
// ---------------------------------------------------------------------------
const indexURL = Deno.args[0];
// Pyodide's Emscripten glue sees Deno's Node compatibility layer and asks for a
// CommonJS `require`. Hand it only what it needs to load; modules that would open
// sockets or spawn processes are refused here as well as by Deno's permissions.
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
globalThis.require = (name) => {
  const key = name.startsWith("node:") ? name.slice(5) : name;
  if (key in nodeModules) return nodeModules[key];
  if (key === "child_process") return refusedChildProcess;
  if (key === "ws") return RefusedWebSocket;
  throw new Error(`module '${name}' is not available in the sandbox`);
};
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

pyodide.globals.set("_tg_host_call", hostCall);
send({ op: "ready", version: pyodide.version });

// ---------------------------------------------------------------------------
// Main loop.
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
      driverRun = pyodide.globals.get("_tg_run");
      send({ op: "init_ok" });
    } else if (msg.op === "mount") {
      mountPath(pyodide.FS, msg.host_path, msg.virtual_path);
      send({ op: "mount_ok" });
    } else if (msg.op === "sync") {
      syncPath(pyodide.FS, msg.virtual_path, msg.host_path);
      send({ op: "sync_ok" });
    } else if (msg.op === "exec") {
      // The driver returns the complete JSON reply as a string.
      sendRaw(driverRun(msg.request));
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
