#!/usr/bin/env python3
"""Seconds from start to the first streamed byte of a command's output (time to first token).

    tools/first_token.py .build/release/bonsai generate -m model.gguf -p "Instruct: hi\\nOutput:" -n 4 -t 2

Run it a few times with the file in the page cache; the machine is noisy.
"""
import subprocess
import sys
import time

if len(sys.argv) < 2:
    sys.exit(__doc__)
start = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
first = proc.stdout.read(1)
t_first = time.monotonic() - start
proc.stdout.read()
code = proc.wait()
if not first:
    sys.exit(f"no output (exit {code})")
print(f"first byte after {t_first:.3f} s, exit after {time.monotonic() - start:.3f} s")
