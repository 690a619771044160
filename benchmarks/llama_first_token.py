#!/usr/bin/env python3
"""llama.cpp's time to first token on a GGUF file, for comparison with tools/first_token.py on Bonsai.

    benchmarks/.venv/bin/python benchmarks/llama_first_token.py benchmarks/out/phi2-synth-q8_0.gguf

Times, through llama-cpp-python, loading the model (2 threads), evaluating the prompt
"Instruct: hi\\nOutput:" and picking the first token greedily. The Python import of llama_cpp comes
before the clock starts; Bonsai's number includes its whole process start. Run it a few times with the
file in the page cache.
"""
import sys
import time

if len(sys.argv) != 2:
    sys.exit(__doc__)
from llama_cpp import Llama

start = time.monotonic()
llm = Llama(model_path=sys.argv[1], n_threads=2, n_ctx=512, verbose=False)
tokens = llm.tokenize(b"Instruct: hi\nOutput:", add_bos=False)
llm.eval(tokens)
llm.sample(temp=0.0)
print(f"{len(tokens)} prompt tokens, first token after {time.monotonic() - start:.3f} s")
