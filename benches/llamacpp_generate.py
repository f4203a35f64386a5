"""llama.cpp (through llama-cpp-python) on the same GGUF model, prompt and
thread count as `xpu generate`: prompt time (to the first token) and
generation tokens/s, greedy. Used by benches/llm_vs_llamacpp.sh."""

import sys
import time

from llama_cpp import Llama

model, prompt, max_tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=512, verbose=False)
# No warm-up run: like `xpu generate`, one generation right after loading.
start = time.perf_counter()
stamps = []
text = ""
for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stream=True):
    stamps.append(time.perf_counter())
    text += chunk["choices"][0]["text"]
prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=False))
prompt_ms = (stamps[0] - start) * 1e3
gen = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
print(f"text: {text!r}")
print(f"prompt: {prompt_tokens} tokens in {prompt_ms:.1f} ms")
print(f"generation: {len(stamps)} tokens, {gen:.1f} tokens/s")
print(f"prompt-ms {prompt_ms:.2f} generation-tps {gen:.2f}")
