"""Parts of the Deno + Pyodide sandbox behind :class:`textgrad_like.tools.python_interpreter.PythonInterpreter`.

* ``errors``: the typed errors the interpreter raises;
* ``install``: finding Deno, installing Pyodide into the local cache, and the command line
  (``python -m textgrad_like.tools.python_interpreter --setup --check``);
* ``grants``: copying granted host files into the sandbox and back, refusing links that
  leave a grant;
* ``channel``: the framed, authenticated line protocol with the runner, with bounded buffers;
* ``driver.py`` and ``runner.js``: the code that runs *inside* the sandbox (never imported
  by the host).

The design and the threat model are in ``docs/sandbox.md``.
"""
